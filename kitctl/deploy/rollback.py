"""Undo a failed deploy as a real inverse, then say truthfully where each service stands.

Two phases, so that no two containers of a service ever run at once (two
PostgreSQL servers on one data volume, two agents on one host port):

1. take down everything the deploy brought up, newest first: each new
   container is stopped cleanly, then removed; a stopped one that `up` had
   started is stopped again;
2. bring the previous containers back, oldest step first (dependency order):
   renamed to their own names, restarted where the deploy had stopped them,
   each waited for before the next one starts.

What each touched service is afterwards is read back from the engine, not
assumed: `describe` turns it into the one line the operator sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitctl.deploy.steps import ServiceAfter, StopOld, WaitReady

if TYPE_CHECKING:
    from kitctl.deploy.actions import ServiceAction
    from kitctl.deploy.steps import Step, StepContext


def rollback(ctx: "StepContext", done_log: list["Step"], actions: list["ServiceAction"]) -> list[ServiceAfter]:
    """Undo every step that ran (see the module docstring for the order); the services' states after."""
    if done_log:
        ctx.reporter.note("rolling back: new containers first, then the previous ones again")
        for step in reversed([s for s in done_log if not s.restores]):
            _undo(ctx, step)
        for step in [s for s in done_log if s.restores]:
            if _undo(ctx, step) and isinstance(step, StopOld):
                _wait_restored(ctx, step.service)
    return [service_after(ctx, a) for a in actions if a.changes_anything]


def keep_for_inspection(ctx: "StepContext", actions: list["ServiceAction"]) -> list[ServiceAfter]:
    """`up --keep` after a failed first deploy: nothing ran before it, so nothing needs restoring; the new
    containers are stopped (no restart loop) and left with the networks and volumes for the person to read."""
    ctx.reporter.note("keeping the failed deploy to inspect (--keep): containers stopped, networks and volumes "
                      "left; `kitctl down --volumes` removes them")
    for service, container in ctx.containers.items():
        try:
            ctx.api.stop(container, timeout=10)
        except Exception as exc:  # noqa: BLE001 — a container that will not stop is named in its state below
            from kitctl.engine import first_line

            ctx.reporter.warn(f"{service}: could not stop the kept container: {first_line(exc)}")
    return [service_after(ctx, a) for a in actions if a.changes_anything]


def _undo(ctx: "StepContext", step: "Step") -> bool:
    """Undo one step; an error is reported and the rollback goes on (a partial restore beats none)."""
    from kitctl.engine import first_line

    try:
        step.undo(ctx)
        return True
    except Exception as exc:
        ctx.reporter.warn(f"rollback of {step.service}: {step.describe()}: {first_line(exc)}")
        return False


def _wait_restored(ctx: "StepContext", service: str) -> None:
    from kitctl.engine import first_line

    try:
        # the engine's own verdict, not kitctl's probe: after a failed deploy `status` must already agree
        WaitReady(service, own_probe=False).run(ctx)
        ctx.reporter.done(service, "previous container back, healthy", 0.0)
    except Exception as exc:
        ctx.reporter.warn(f"the previous {service} container is not healthy: {first_line(exc)}")


def service_after(ctx: "StepContext", action: "ServiceAction") -> ServiceAfter:
    """What the engine says of the service's container now, against what it was before the deploy."""
    if action.kind == "create":
        left = ctx.containers.get(action.service)
        if left is None:
            return ServiceAfter(action.service, "removed (new in this deploy)", True)
        return ServiceAfter(action.service, f"new container left behind, {_words(_state(ctx, left))}", False)
    assert action.old is not None
    state = _state(ctx, action.old.id)
    if state is None:
        return ServiceAfter(action.service, "previous container is gone", False)
    if action.kind == "start":  # it was stopped before the deploy
        return ServiceAfter(action.service, f"previous container {_words(state)}", state.get("Status") != "running")
    healthy = (state.get("Health") or {}).get("Status") in (None, "healthy")
    named = _name(state, ctx.name_of(action.service))
    ok = state.get("Status") == "running" and healthy and named
    suffix = "" if named else f" (still named {state.get('Name', '?').lstrip('/')})"
    return ServiceAfter(action.service, f"previous container {_words(state)}{suffix}", ok)


def _state(ctx: "StepContext", container: str) -> dict[str, Any] | None:
    from docker.errors import NotFound

    try:
        found = ctx.api.inspect_container(container)
    except NotFound:
        return None
    return {**found.get("State", {}), "Name": found.get("Name", "")}


def _name(state: dict[str, Any], expected: str) -> bool:
    return not state.get("Name") or state["Name"].lstrip("/") == expected


def _words(state: dict[str, Any] | None) -> str:
    if state is None:
        return "gone"
    status = state.get("Status", "unknown")
    if status in ("exited", "dead"):
        return f"{status} (code {state.get('ExitCode')})"
    health = (state.get("Health") or {}).get("Status")
    return f"{status} ({health})" if health else status


def describe(after: list[ServiceAfter]) -> str:
    """The closing words of a failed deploy: what runs now, service by service."""
    if not after:
        return "nothing had changed"
    listed = ", ".join(f"{a.service} {a.state}" for a in after)
    if all(a.ok for a in after):
        return f"rolled back, every service as before: {listed}"
    broken = ", ".join(a.service for a in after if not a.ok)
    return f"rollback incomplete ({broken} not as before; run `kitctl up` once the cause is fixed): {listed}"
