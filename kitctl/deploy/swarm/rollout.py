"""`kitctl up --orchestrator swarm`: the rendered site as Swarm services on a manager node.

network (overlay, attachable) → configs and secrets (new names for new content) → the database's node
label → services in dependency order, each created or updated and waited for until converged healthy.
An update is Swarm's rolling update (start-first where tasks may overlap, monitored); a failed one is
rolled back by Swarm itself and `up` exits 1 saying so. Configs and secrets no service uses any more
are removed once every service converged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from kitctl.deploy.order import start_order
from kitctl.deploy.swarm.converge import wait_converged
from kitctl.deploy.swarm.definitions import ROLE_LABEL, SPEC_HASH, StackDefs, db_node_label, stack_defs
from kitcore.errors import InvalidInput, KitError

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Project


class SwarmUpdateFailed(KitError):
    """A service did not converge; Swarm rolled it back (or it never turned healthy)."""


@dataclass
class SwarmResult:
    project: str
    changed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.changed


def swarm_up(api: "APIClient", project: "Project", timeout: float,
             note: Callable[[str], None] = lambda line: None) -> SwarmResult:
    """Deploy or update; SwarmUpdateFailed (exit 1) when a service does not converge healthy."""
    from kitctl.deploy.pull import local_image_ids
    from kitctl.deploy.secret_copy import service_owner

    node = _manager_node(api)
    ids = local_image_ids(api, [s.image for s in project.services.values()])
    missing = sorted(ref for ref, found in ids.items() if not found)
    if missing:
        raise KitError(f"image {missing[0]} is not on the engine: load it on every node first")
    defs = stack_defs(project, {n: service_owner(api, s) for n, s in project.services.items() if s.secrets()}, ids)
    result = SwarmResult(project.name, warnings=_warnings(defs))
    started = time.monotonic()
    existing = {s["Spec"]["Name"]: s for s in api.services(filters={"label": f"com.docker.stack.namespace={project.name}"})}
    todo = [n for n in defs.services if existing.get(defs.services[n].name, {}).get("Spec", {}).get("Labels", {})
            .get(SPEC_HASH) != defs.services[n].spec_hash()]
    result.kept = [n for n in defs.services if n not in todo]
    if not todo:
        return result
    _ensure_network(api, defs)
    file_ids = _ensure_files(api, defs)
    if "db" in defs.services and project.site_id:
        _pin_db(api, node, project.site_id)
    for name in start_order({n: list(d.dependencies) for n, d in defs.services.items()}):
        if name not in todo:
            continue
        current = existing.get(defs.services[name].name)
        _apply(api, defs, name, current, file_ids)
        note(f"{name}: {'updating' if current else 'creating'}")
        verdict = wait_converged(api, defs.services[name].name, time.monotonic() + timeout,
                                 (current or {}).get("UpdateStatus"))
        if verdict.state != "converged":
            how = "rolled back by Swarm" if verdict.state == "rolled_back" else f"not healthy within {timeout:.0f}s"
            raise SwarmUpdateFailed(f"{name} {how}: {verdict.detail}")
        result.changed.append(name)
        note(f"{name}: converged")
    _remove_unused_files(api, project.name, set(defs.files))
    result.seconds = time.monotonic() - started
    return result


def _manager_node(api: "APIClient") -> str:
    swarm = api.info().get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        raise InvalidInput("--orchestrator swarm needs a Swarm manager: run `docker swarm init` (or join as a "
                           "manager) on the engine first")
    return str(swarm["NodeID"])


def _warnings(defs: StackDefs) -> list[str]:
    published = sorted({p[0] for d in defs.services.values() for p in d.ports})
    if not published:
        return []
    return [f"Swarm publishes host ports on every address of the node (it has no bind address): "
            f"{', '.join(map(str, published))}; firewall them where only loopback was meant"]


def _ensure_network(api: "APIClient", defs: StackDefs) -> None:
    if not api.networks(names=[defs.network]):
        api.create_network(defs.network, driver="overlay", attachable=True, labels=defs.labels, scope="swarm")


def _ensure_files(api: "APIClient", defs: StackDefs) -> dict[str, str]:
    """Create each config and secret not there yet; name → id."""
    have = {c["Spec"]["Name"]: c["ID"] for c in api.configs(filters={"label": f"{ROLE_LABEL}=config"})}
    have |= {s["Spec"]["Name"]: s["ID"] for s in api.secrets(filters={"label": f"{ROLE_LABEL}=secret"})}
    for name, item in defs.files.items():
        if name in have:
            continue
        labels = defs.labels | {ROLE_LABEL: item.kind}
        create = api.create_config if item.kind == "config" else api.create_secret
        made = create(name, item.data, labels=labels)
        have[name] = made["ID"]
    return have


def _pin_db(api: "APIClient", node: str, site_id: str) -> None:
    """The database runs where its volume is: the node labelled for it, this manager unless one already is."""
    key = db_node_label(site_id)
    if any(key in (n["Spec"].get("Labels") or {}) for n in api.nodes()):
        return
    spec = api.inspect_node(node)
    labels = {**(spec["Spec"].get("Labels") or {}), key: "true"}
    api.update_node(node, spec["Version"]["Index"], {**spec["Spec"], "Labels": labels})


def _apply(api: "APIClient", defs: StackDefs, name: str, current: dict | None, file_ids: dict[str, str]) -> None:
    from kitctl.deploy.swarm.params import service_kwargs

    kwargs = service_kwargs(defs.services[name], file_ids)
    if current is None:
        api.create_service(**kwargs)
        return
    api.update_service(current["ID"], current["Version"]["Index"], fetch_current_spec=False, **kwargs)


def _remove_unused_files(api: "APIClient", project: str, wanted: set[str]) -> None:
    from docker.errors import APIError

    stack = f"com.docker.stack.namespace={project}"
    for kind, listing, remove in (("config", api.configs, api.remove_config), ("secret", api.secrets, api.remove_secret)):
        for item in listing(filters={"label": [stack, f"{ROLE_LABEL}={kind}"]}):
            if item["Spec"]["Name"] not in wanted:
                try:
                    remove(item["ID"])
                except APIError:
                    pass  # still used by a task being shut down: the next `up` removes it
