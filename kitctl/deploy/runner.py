"""Run a deploy plan: services in dependency order (independent ones in parallel),
each gated on its health; on any failure every step that ran is undone (kitctl.deploy.rollback).

Old containers are removed only after *every* service is healthy, so a failure
late in the stack still restores the containers that served before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from kitctl.deploy.compose import Project
from kitctl.deploy.actions import ServiceAction
from kitctl.deploy.rollback import keep_for_inspection, rollback
from kitctl.deploy.steps import (
    CreateContainer, RemoveOld, RenameOld, StartContainer, Step, StepContext, StepFailed, StopOld, WaitReady,
)


@dataclass
class Outcome:
    changed: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    seconds: float = 0.0


def service_phases(project: Project, action: ServiceAction, until: str = "healthy") -> tuple[list[Step], list[Step]]:
    """(prepare, activate) steps for one service; the old container is removed later, after all are healthy.

    `prepare` (set the old container aside, create the new one) runs at once,
    while dependencies are still starting; `activate` (stop the old one if it
    must, start, wait until healthy) runs once every dependency is ready.
    """
    image = project.services[action.service].image
    name = action.service
    if action.kind == "keep":
        return [], []
    if action.kind == "start":
        return [], [StartContainer(name, existing=action.old), WaitReady(name, until)]
    prepare: list[Step] = []
    activate: list[Step] = []
    if action.kind == "recreate":
        assert action.old is not None
        prepare.append(RenameOld(name, action.old))
        if action.strategy == "stop-first":
            activate.append(StopOld(name, action.old))
    prepare.append(CreateContainer(name, image))
    activate += [StartContainer(name), WaitReady(name, until)]
    return prepare, activate


def service_steps(project: Project, action: ServiceAction, until: str = "healthy") -> list[Step]:
    prepare, activate = service_phases(project, action, until)
    return prepare + activate


def completion_services(project: Project) -> set[str]:
    """Services some dependent waits on to *exit successfully* (one-shot jobs)."""
    return {d.service for s in project.services.values() for d in s.depends_on
            if d.condition == "service_completed_successfully"}


def run_plan(ctx: StepContext, prepare: list[Step], actions: list[ServiceAction]) -> Outcome:
    """Execute; raise StepFailed (after rollback) when a service does not come up."""
    started = time.monotonic()
    done_log: list[Step] = []
    lock = threading.Lock()
    try:
        for step in prepare:  # networks and volumes: undone last, once no new container uses them
            done_log.append(step)
            step.run(ctx)
    except Exception:
        rollback(ctx, done_log, [])
        raise
    for action in actions:
        if action.old is not None:
            ctx.containers[action.service] = action.old.id
    failures: list[StepFailed] = []
    finished = {a.service: threading.Event() for a in actions}
    ok: dict[str, bool] = {}
    one_shot = completion_services(ctx.project)

    def worker(action: ServiceAction) -> None:
        try:
            until = "completed" if action.service in one_shot else "healthy"
            prepare_steps, activate_steps = service_phases(ctx.project, action, until)
            t0 = time.monotonic()
            if not prepare_steps and not activate_steps:
                ctx.reporter.done(action.service, "unchanged, left running", 0.0)
                ok[action.service] = True
                return
            ctx.reporter.step(action.service, f"{action.kind} ({action.reason})")
            if not ctx.early_prepare:  # prepare with the activation, after the dependencies
                activate_steps, prepare_steps = prepare_steps + activate_steps, []
            if not _run_steps(ctx, action.service, prepare_steps, t0, done_log, lock, failures):
                ok[action.service] = False
                return
            deps = ctx.project.services[action.service].dependency_names()
            for dep in deps:
                if dep in finished:
                    finished[dep].wait()
            if failures or not all(ok.get(d, True) for d in deps):
                ok[action.service] = False
                return
            ok[action.service] = _run_steps(ctx, action.service, activate_steps, t0, done_log, lock, failures)
            if ok[action.service]:
                ctx.reporter.done(action.service, "healthy" if until == "healthy" else "completed",
                                  time.monotonic() - t0)
        finally:
            finished[action.service].set()

    threads = [threading.Thread(target=worker, args=(a,), daemon=True) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        first_deploy = all(a.old is None for a in actions)
        if ctx.keep_failed and first_deploy:
            failures[0].after = keep_for_inspection(ctx, actions)
        else:
            failures[0].after = rollback(ctx, done_log, actions)
        raise failures[0]
    for action in actions:
        if action.kind == "recreate" and action.old is not None:
            RemoveOld(action.service, action.old).run(ctx)
    return Outcome(changed=[a.service for a in actions if a.changes_anything],
                   created=[a.service for a in actions if a.kind == "create"],
                   seconds=time.monotonic() - started)


def _run_steps(ctx: StepContext, service: str, steps: list[Step], t0: float, done_log: list[Step],
               lock: threading.Lock, failures: list[StepFailed]) -> bool:
    """Run steps in order; on the first failure record it (for the rollback) and stop."""
    for step in steps:
        ctx.reporter.step(service, step.describe())
        try:
            step.run(ctx)
        except StepFailed as exc:
            ctx.reporter.failed(service, str(exc).split(": ", 1)[-1], time.monotonic() - t0)
            with lock:
                failures.append(exc)
            return False
        except Exception as exc:  # an engine error: report it as this service's failure
            from kitctl.engine import first_line

            ctx.reporter.failed(service, first_line(exc), time.monotonic() - t0)
            with lock:
                failures.append(StepFailed(service, first_line(exc)))
            return False
        finally:
            with lock:
                if not isinstance(step, WaitReady):
                    done_log.append(step)
    return True
