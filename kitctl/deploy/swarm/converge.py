"""When a Swarm service has converged: every replica's task running (for a service with a healthcheck Swarm
reports a task running only once its container is healthy) and no update or rollback in progress.

The verdict is a plain function of what the engine reports, so tests can give it any state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import APIClient

POLL_SECONDS = 0.5
FAILED_UPDATE = {"rollback_completed", "rollback_paused", "paused"}


@dataclass(frozen=True)
class Verdict:
    state: str  # "converged" | "waiting" | "rolled_back"
    detail: str = ""


def verdict(service: dict[str, Any], tasks: list[dict[str, Any]], earlier: dict[str, Any] | None = None) -> Verdict:
    """The service's state from its inspect and its tasks' (as the Engine API returns them); `earlier` is the
    update status from before this change, which says nothing about it (a rollback of last time, say)."""
    status = service.get("UpdateStatus") or {}
    update = None if earlier and status == earlier else status.get("State")
    if update in FAILED_UPDATE:
        return Verdict("rolled_back", status.get("Message", update))
    if update in ("updating", "rollback_started"):
        return Verdict("waiting", f"update {update}")
    wanted = service["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", 1)
    current = [t for t in tasks if t.get("DesiredState") == "running"]
    running = [t for t in current if t.get("Status", {}).get("State") == "running"]
    stale = [t for t in running if _spec_of(t) != _spec_of_service(service)]
    if len(running) == wanted and len(current) == wanted and not stale:
        return Verdict("converged")
    errors = [t["Status"].get("Err") for t in tasks if t.get("Status", {}).get("Err")]
    detail = f"{len(running)}/{wanted} tasks running" + (f" (last error: {errors[-1]})" if errors else "")
    return Verdict("waiting", detail)


def wait_converged(api: "APIClient", name: str, deadline: float, earlier: dict[str, Any] | None = None) -> Verdict:
    """Poll until converged, rolled back, or the deadline (monotonic) passes (the last 'waiting' verdict)."""
    last = Verdict("waiting", "not looked at yet")
    while time.monotonic() < deadline:
        last = verdict(api.inspect_service(name), api.tasks(filters={"service": name}), earlier)
        if last.state != "waiting":
            return last
        time.sleep(POLL_SECONDS)
    return last


def _spec_of(task: dict[str, Any]) -> str:
    """The container spec a task runs (image, configs, secrets, labels…): an older task's differs."""
    import json

    return json.dumps(task.get("Spec", {}).get("ContainerSpec") or {}, sort_keys=True)


def _spec_of_service(service: dict[str, Any]) -> str:
    return _spec_of({"Spec": service["Spec"].get("TaskTemplate", {})})
