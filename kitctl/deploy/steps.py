"""Deploy steps as plain objects (Kamal style): each says what it does, does it, and can undo it.

A step touches the engine only in `run`/`undo`, through `ctx.api` (docker-py's
low-level client), so the runner's rollback is just "undo what ran, newest first".
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from kitctl.deploy import labels as L
from kitctl.deploy.compose import Project, Resource
from kitctl.deploy.state import OLD_SUFFIX, Running
from kitcore.errors import KitError

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.report import Reporter

LOG_TAIL = 15
STOP_SECONDS = 20  # SIGTERM, then SIGKILL: PostgreSQL's fast shutdown needs far less


@dataclass(frozen=True)
class ServiceAfter:
    """One service a failed deploy touched, once the rollback ended (kitctl.deploy.rollback)."""

    service: str
    state: str  # in words, as the engine reports it
    ok: bool  # as it was before the deploy


class StepFailed(KitError):
    """A service did not come up; carries its last log lines for the person."""

    def __init__(self, service: str, message: str, logs: str = "") -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.logs = logs
        self.after: list[ServiceAfter] = []  # each touched service's state once the rollback ended


@dataclass
class StepContext:
    api: "APIClient"
    project: Project
    hashes: dict[str, tuple[str, str]]  # service → (config hash, mounts hash)
    reporter: "Reporter"
    host_path: Callable[[str], str] = lambda p: p
    timeouts: dict[str, float] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)  # service → id of the container now serving it
    # create every changed container at once (local engine); over ssh:// each call is an SSH
    # session and docker-py's transport keeps many open, so there they are made one service at a time
    early_prepare: bool = True
    make_dirs: Callable[[str], None] = lambda path: os.makedirs(path, mode=0o700, exist_ok=True)  # on the engine's host
    keep_failed: bool = False  # `up --keep`: a failed first deploy stops what it made instead of removing it
    own_probes: bool = True  # run each healthcheck at once (kitctl.deploy.probe); off over ssh://: a session per call

    def name_of(self, service: str) -> str:
        return L.container_name(self.project.name, service)


class Step:
    """One action on the engine. `service` is None for stack-wide steps.

    `restores` marks the steps whose undo brings a previous container back; a
    rollback undoes them only after every other step's undo took the new
    containers away (see kitctl.deploy.rollback).
    """

    service: str | None
    restores = False

    def describe(self) -> str:
        raise NotImplementedError

    def run(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def undo(self, ctx: StepContext) -> None:
        """Reverse `run` during a rollback; most steps leave nothing to undo."""


@dataclass
class EnsureNetwork(Step):
    resource: Resource
    service: str | None = None
    created: bool = False  # by this step: a failed deploy removes it again

    def describe(self) -> str:
        return f"network {self.resource.name}: {'check (external)' if self.resource.external else 'ensure'}"

    def run(self, ctx: StepContext) -> None:
        if ctx.api.networks(names=[self.resource.name]):
            return
        if self.resource.external:
            raise KitError(f"external network {self.resource.name} does not exist on the engine")
        ctx.api.create_network(self.resource.name, driver="bridge",
                               labels=L.resource_labels(ctx.project, L.NETWORK, self.resource.key))
        self.created = True
        ctx.reporter.note(f"created network {self.resource.name}")

    def undo(self, ctx: StepContext) -> None:
        if self.created:
            ctx.api.remove_network(self.resource.name)
            ctx.reporter.note(f"removed network {self.resource.name} (made by this deploy)")


@dataclass
class EnsureVolume(Step):
    resource: Resource
    service: str | None = None
    created: bool = False  # by this step: a failed deploy removes it again (nothing of the site is in it yet)

    def describe(self) -> str:
        return f"volume {self.resource.name}: {'check (external)' if self.resource.external else 'ensure'}"

    def run(self, ctx: StepContext) -> None:
        from docker.errors import NotFound

        try:
            ctx.api.inspect_volume(self.resource.name)
            return
        except NotFound:
            pass
        if self.resource.external:
            raise KitError(f"external volume {self.resource.name} does not exist on the engine")
        if self.resource.bind_device:
            ctx.make_dirs(self.resource.bind_device)
        ctx.api.create_volume(self.resource.name, driver="local" if self.resource.driver_opts else None,
                              driver_opts=dict(self.resource.driver_opts) or None,
                              labels=L.resource_labels(ctx.project, L.VOLUME, self.resource.key))
        self.created = True
        ctx.reporter.note(f"created volume {self.resource.name}"
                          + (f" on {self.resource.bind_device}" if self.resource.bind_device else ""))

    def undo(self, ctx: StepContext) -> None:
        if self.created:
            ctx.api.remove_volume(self.resource.name)
            ctx.reporter.note(f"removed volume {self.resource.name} (made by this deploy)")


@dataclass
class RenameOld(Step):
    service: str
    old: Running
    restores = True

    def describe(self) -> str:
        return f"keep the running container aside as {self.old.name}{OLD_SUFFIX}"

    def run(self, ctx: StepContext) -> None:
        ctx.api.rename(self.old.id, ctx.name_of(self.service) + OLD_SUFFIX)

    def undo(self, ctx: StepContext) -> None:
        ctx.api.rename(self.old.id, ctx.name_of(self.service))
        ctx.containers[self.service] = self.old.id


@dataclass
class StopOld(Step):
    service: str
    old: Running
    restores = True

    def describe(self) -> str:
        return "stop the old container (it holds host ports or a data volume)"

    def run(self, ctx: StepContext) -> None:
        ctx.api.stop(self.old.id, timeout=STOP_SECONDS)

    def undo(self, ctx: StepContext) -> None:
        ctx.api.start(self.old.id)
        ctx.containers[self.service] = self.old.id


@dataclass
class CreateContainer(Step):
    service: str
    image: str
    created_id: str | None = None

    def describe(self) -> str:
        return f"create container from {self.image}"

    def run(self, ctx: StepContext) -> None:
        from kitctl.deploy.secret_copy import copy_secrets
        from kitctl.deploy.spec import create_kwargs, extra_networks, secrets_copied

        svc = ctx.project.services[self.service]
        created = ctx.api.create_container(**create_kwargs(
            ctx.api, ctx.project, svc, ctx.hashes[self.service], ctx.name_of(self.service), ctx.host_path))
        self.created_id = created["Id"]
        ctx.containers[self.service] = created["Id"]
        for network, aliases in extra_networks(ctx.project, svc):
            ctx.api.connect_container_to_network(created["Id"], network, aliases=aliases)
        if secrets_copied(svc):
            copy_secrets(ctx.api, created["Id"], svc)

    def undo(self, ctx: StepContext) -> None:
        from docker.errors import NotFound

        if not self.created_id:
            return
        try:
            ctx.api.remove_container(self.created_id, force=True)
        except NotFound:
            pass
        if ctx.containers.get(self.service) == self.created_id:
            del ctx.containers[self.service]


@dataclass
class StartContainer(Step):
    service: str
    existing: Running | None = None  # start a stopped container instead of the new one
    started_id: str | None = None

    def describe(self) -> str:
        return "start the existing container" if self.existing else "start"

    def run(self, ctx: StepContext) -> None:
        if self.existing:
            ctx.containers[self.service] = self.existing.id
        self.started_id = ctx.containers[self.service]
        ctx.api.start(self.started_id)

    def undo(self, ctx: StepContext) -> None:
        """Stop what this step started, cleanly: a new database shuts down before its volume goes back to the old."""
        from docker.errors import NotFound

        if self.started_id is None:
            return
        try:
            ctx.api.stop(self.started_id, timeout=STOP_SECONDS)
        except NotFound:
            pass


@dataclass
class WaitReady(Step):
    """Health gate: healthy (or running, without a healthcheck), or exited 0 for one-shot jobs."""

    service: str
    until: str = "healthy"  # healthy | completed
    own_probe: bool = True  # False: only the engine's verdict (a rollback's restored container, for `status` after it)

    def describe(self) -> str:
        return "wait until it exits successfully" if self.until == "completed" else "wait until healthy"

    def run(self, ctx: StepContext) -> None:
        from contextlib import closing

        from kitctl.deploy.probe import BACKOFF, GAP_SECONDS, own_probe

        container = ctx.containers[self.service]
        limit = ctx.timeouts.get(self.service, 120.0)
        probe = own_probe(ctx.project.services[self.service].healthcheck) \
            if self.until == "healthy" and ctx.own_probes and self.own_probe else None
        tick = GAP_SECONDS if probe else None
        next_probe, gap = 0.0, GAP_SECONDS  # each probe's exec is itself an event of the container: the gap is kept here
        with closing(state_changes(ctx.api, container, limit, tick)) as changes:  # the stream ends here, not at GC
            for _ in changes:
                state = ctx.api.inspect_container(container)["State"]
                verdict = self._verdict(state)
                if verdict == "ok":
                    return
                if verdict is not None:
                    raise StepFailed(self.service, verdict, last_logs(ctx.api, container))
                # only until the engine's first probe: from then on its own cadence, and the service's log (whose
                # last lines a failure shows) is not filled with kitctl's probes
                engine_probed = bool((state.get("Health") or {}).get("Log"))
                if probe and not engine_probed and state.get("Status") == "running" and time.monotonic() >= next_probe:
                    if probe.passes(ctx.api, container):
                        return  # its own healthcheck passed: what the engine reports at its next interval
                    next_probe, gap = time.monotonic() + gap, gap * BACKOFF
        raise StepFailed(self.service, f"not healthy within {limit:.0f}s", last_logs(ctx.api, container))

    def _verdict(self, state: dict[str, Any]) -> str | None:
        """'ok', a failure message, or None to keep waiting."""
        status = state.get("Status")
        if self.until == "completed":
            if status == "exited":
                return "ok" if state.get("ExitCode") == 0 else f"exited with code {state.get('ExitCode')}"
            return None
        if status in ("exited", "dead"):
            return f"exited with code {state.get('ExitCode')}"
        if status == "restarting":
            return "keeps restarting (crashed at least once)"
        health = (state.get("Health") or {}).get("Status")
        if health is None:
            return "ok" if status == "running" else None
        if health == "healthy":
            return "ok"
        if health == "unhealthy":
            log = (state.get("Health") or {}).get("Log") or [{}]
            probe = (log[-1].get("Output") or "").strip().splitlines()
            return "unhealthy" + (f" (probe: {probe[-1][:160]})" if probe else "")
        return None


@dataclass
class RemoveOld(Step):
    """Take the previous container away once the new one serves: stopped first (SIGTERM, so a web server
    finishes the requests it holds and closes its connections; the proxy's next try reaches the new one),
    then removed. A forced remove alone is SIGKILL: every request in flight on the old one would fail."""

    service: str
    old: Running

    def describe(self) -> str:
        return f"remove the previous container {self.old.id[:12]}"

    def run(self, ctx: StepContext) -> None:
        from docker.errors import NotFound

        try:
            ctx.api.stop(self.old.id, timeout=STOP_SECONDS)
            ctx.api.remove_container(self.old.id, force=True)
        except NotFound:
            pass


def state_changes(api: "APIClient", container: str, limit: float, tick: float | None = None) -> Iterator[None]:
    """Yield at once, then whenever the engine reports an event of the container (and, with `tick`, at
    least every `tick` seconds, for kitctl's own probe), for `limit` seconds.

    Services start one after another, each gated on its health; a poll would
    add half a poll interval to every service, while the engine's event stream
    says the moment a probe passes. The stream is opened before the first look,
    so no change falls between the two; the engine closes it at the deadline.
    """
    deadline = time.monotonic() + limit
    stream = api.events(until=int(time.time() + limit) + 1, filters={"container": [container], "type": ["container"]},
                        decode=True)
    try:
        yield None
        for _event in (stream if tick is None else _ticking(stream, tick)):
            yield None
            if time.monotonic() > deadline:
                return
    finally:
        close_stream(stream)


def _ticking(stream: Any, tick: float) -> Iterator[None]:
    """The stream's events, with a `None` between them whenever `tick` seconds pass without one.

    A thread reads the stream (a blocking read); closing the stream ends it.
    """
    import queue
    import threading

    events: "queue.SimpleQueue[bool]" = queue.SimpleQueue()

    def pump() -> None:
        try:
            for _event in stream:
                events.put(True)
        except Exception:  # the stream closed under the reader: the generator's owner ended the wait
            pass
        finally:
            events.put(False)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            if not events.get(timeout=tick):
                return  # the engine ended the stream (its deadline)
        except queue.Empty:
            pass
        yield None


def close_stream(stream: Any) -> None:
    """End an event stream; over ssh:// docker-py cannot cancel one, so its SSH channel is closed instead.

    docker-py raises "Cancellable streams not supported for the SSH protocol"
    there; left to the garbage collector that became an "Exception ignored"
    traceback on every deploy.
    """
    from docker.errors import DockerException

    try:
        stream.close()
    except DockerException:
        channel = getattr(getattr(getattr(getattr(stream, "_response", None), "raw", None), "_fp", None), "fp", None)
        channel = getattr(channel, "channel", None)
        if channel is not None:
            channel.close()


def last_logs(api: "APIClient", container: str, tail: int = LOG_TAIL) -> str:
    try:
        return api.logs(container, tail=tail, stdout=True, stderr=True).decode("utf-8", "replace")
    except Exception:  # the logs are a courtesy; the failure itself is what matters
        return ""
