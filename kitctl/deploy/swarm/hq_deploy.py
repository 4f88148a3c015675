"""`kitctl hq deploy --orchestrator swarm`: HQ's instances as one replicated Swarm service on PostgreSQL.

network (overlay, attachable) → the state secret → the migration job (one task, run to completion, then
removed) → the instances' service created or rolled over start-first, waited for until every replica is
healthy. With nothing changed (the service's spec hash) nothing runs, not even the migration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from kitctl.deploy.swarm.converge import POLL_SECONDS, wait_converged
from kitctl.deploy.swarm.definitions import ROLE_LABEL, SPEC_HASH, STACK_LABEL
from kitctl.deploy.swarm.hq_stack import HqStack, HqSwarmOptions, hq_stack
from kitctl.deploy.swarm.rollout import SwarmUpdateFailed, _manager_node
from kitcore.errors import KitError

if TYPE_CHECKING:
    from docker import APIClient

MIGRATE_SECONDS = 300.0


@dataclass
class HqDeployResult:
    name: str
    changed: bool = False
    migrated: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def hq_deploy(api: "APIClient", options: HqSwarmOptions, timeout: float = 180.0,
              note: Callable[[str], None] = lambda line: None) -> HqDeployResult:
    """Deploy or update; SwarmUpdateFailed (exit 1) when the migration fails or the instances do not converge."""
    from kitctl.deploy.pull import local_image_ids

    options.checked()
    _manager_node(api)
    image_id = local_image_ids(api, [options.image])[options.image]
    if image_id is None:
        raise KitError(f"image {options.image} is not on the engine: load it on every node first")
    stack = hq_stack(options, image_id)
    started = time.monotonic()
    result = HqDeployResult(options.name)
    current = _service(api, options.name)
    if current and current["Spec"]["Labels"].get(SPEC_HASH) == stack.service.spec_hash() \
            and current["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas") == options.replicas:
        return result  # scaled by hand since: the deploy sets the replicas again
    _ensure_network(api, options.network, stack.labels)
    ids = {stack.state_name: _ensure_secret(api, stack)}
    note("migrating the database (one task)")
    _migrate(api, stack, ids)
    result.migrated = True
    _apply(api, stack, current, ids)
    note(f"{options.name}: {'updating' if current else 'creating'} {options.replicas} instances")
    verdict = wait_converged(api, options.name, time.monotonic() + timeout, (current or {}).get("UpdateStatus"))
    if verdict.state != "converged":
        how = "rolled back by Swarm" if verdict.state == "rolled_back" else f"not healthy within {timeout:.0f}s"
        raise SwarmUpdateFailed(f"HQ {how}: {verdict.detail}")
    _remove_old_state(api, options.name, stack.state_name)
    result.changed, result.seconds = True, time.monotonic() - started
    return result


def hq_remove(api: "APIClient", name: str) -> list[str]:
    """Remove the HQ deployment `name`: its services, then its secrets (the network too when kitctl made it)."""
    from kitctl.deploy.swarm.down import wait_gone

    done = []
    services = api.services(filters={"label": f"{STACK_LABEL}={name}"})
    for svc in services:
        api.remove_service(svc["ID"])
        done.append(f"removed swarm service {svc['Spec']['Name']}")
    wait_gone(api, [svc["ID"] for svc in services])
    for item in api.secrets(filters={"label": [f"{STACK_LABEL}={name}", f"{ROLE_LABEL}=secret"]}):
        api.remove_secret(item["ID"])
        done.append(f"removed swarm secret {item['Spec']['Name']}")
    for net in api.networks(filters={"label": f"{STACK_LABEL}={name}"}):
        api.remove_network(net["Id"])
        done.append(f"removed network {net['Name']}")
    return done


def _service(api: "APIClient", name: str) -> dict | None:
    """The service of exactly that name (the engine's name filter matches prefixes)."""
    return next((s for s in api.services(filters={"name": name}) if s["Spec"]["Name"] == name), None)


def _ensure_network(api: "APIClient", network: str, labels: dict[str, str]) -> None:
    """The overlay sites join with `--hq-network`; an existing one of that name is used as it is."""
    if not api.networks(names=[network]):
        api.create_network(network, driver="overlay", attachable=True, labels=labels, scope="swarm")


def _ensure_secret(api: "APIClient", stack: HqStack) -> str:
    found = api.secrets(filters={"name": stack.state_name})
    exact = [s for s in found if s["Spec"]["Name"] == stack.state_name]
    if exact:
        return str(exact[0]["ID"])
    return str(api.create_secret(stack.state_name, stack.state, labels=stack.labels | {ROLE_LABEL: "secret"})["ID"])


def _migrate(api: "APIClient", stack: HqStack, ids: dict[str, str]) -> None:
    """One task of the HQ image runs the migrations to completion; the instances start after it, never racing."""
    from docker import types

    from kitctl.deploy.swarm.params import service_kwargs

    kwargs = service_kwargs(stack.migrate, ids)
    for key in ("update_config", "rollback_config"):
        kwargs.pop(key)
    kwargs["mode"] = types.ServiceMode("replicated-job", concurrency=1, replicas=1)
    kwargs["task_template"]["RestartPolicy"] = types.RestartPolicy(condition="none")
    old = _service(api, stack.migrate.name)
    if old:
        api.remove_service(old["ID"])  # a job left by an interrupted deploy
    made = api.create_service(**kwargs)
    try:
        state, error = _job_result(api, made["ID"], time.monotonic() + MIGRATE_SECONDS)
    finally:
        api.remove_service(made["ID"])
    if state != "complete":
        raise SwarmUpdateFailed(f"HQ migration {state}: {error or 'see the task log'}; the instances were left as they were")


def _job_result(api: "APIClient", service: str, deadline: float) -> tuple[str, str]:
    """The job's one task's final state ("complete", "failed", "rejected"…) and its error, or "timed out"."""
    while time.monotonic() < deadline:
        for task in api.tasks(filters={"service": service}):
            status = task.get("Status") or {}
            if status.get("State") in ("complete", "failed", "rejected", "shutdown", "orphaned"):
                return str(status["State"]), str(status.get("Err") or "")
        time.sleep(POLL_SECONDS)
    return "timed out", ""


def _apply(api: "APIClient", stack: HqStack, current: dict | None, ids: dict[str, str]) -> None:
    from kitctl.deploy.swarm.params import service_kwargs

    kwargs = service_kwargs(stack.service, ids)
    if current is None:
        api.create_service(**kwargs)
    else:
        api.update_service(current["ID"], current["Version"]["Index"], fetch_current_spec=False, **kwargs)


def _remove_old_state(api: "APIClient", name: str, keep: str) -> None:
    from docker.errors import APIError

    for item in api.secrets(filters={"label": [f"{STACK_LABEL}={name}", f"{ROLE_LABEL}=secret"]}):
        if item["Spec"]["Name"] != keep:
            try:
                api.remove_secret(item["ID"])
            except APIError:
                pass  # an old task shutting down still holds it: the next deploy removes it
