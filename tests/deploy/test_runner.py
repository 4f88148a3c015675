"""The runner's gating and rollback, against a fake of the engine API boundary.

The real engine path is covered end to end in tests/e2e/test_up.py; here the
fake lets a test decide which container turns unhealthy, and check that every
step was undone in the right order.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from kitctl.deploy.actions import plan_services
from kitctl.deploy.compose import parse_project
from kitctl.deploy.container_hashes import config_hash, mounts_hash
from kitctl.deploy.runner import run_plan
from kitctl.deploy.state import Running
from kitctl.deploy.steps import StepContext, StepFailed


class FakeAPI:
    """Just enough of docker.APIClient: containers with names, states and health.

    It also watches the rule a rollback must keep: two containers of a service
    that holds a data volume or a host port (`exclusive`) never run at once.
    """

    def __init__(self, unhealthy_images: set[str], exclusive: frozenset[str] = frozenset({"db", "proxy"})) -> None:
        self.unhealthy_images = unhealthy_images
        self.exclusive = exclusive
        self.containers: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.overlaps: list[str] = []
        self.refuse_start: set[str] = set()
        self._ids = itertools.count(1)

    def add(self, cid: str, name: str, image: str, running: bool = True) -> None:
        self.containers[cid] = {"name": name, "image": image, "running": running, "ran": running}

    def create_networking_config(self, value):
        return value

    def create_endpoint_config(self, **kwargs):
        return kwargs

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, image, name, **_):
        if any(c["name"] == name for c in self.containers.values()):
            raise RuntimeError(f"name {name} in use")
        cid = f"new{next(self._ids)}"
        self.add(cid, name, image, running=False)
        self.calls.append(("create", name))
        return {"Id": cid}

    def start(self, cid):
        if cid in self.refuse_start:
            raise RuntimeError("port is already allocated")
        service = _service_of(self.containers[cid]["name"])
        if service in self.exclusive and any(
                c["running"] and other != cid and _service_of(c["name"]) == service
                for other, c in self.containers.items()):
            self.overlaps.append(service)
        self.containers[cid].update(running=True, ran=True)
        self.calls.append(("start", self.containers[cid]["name"]))

    def stop(self, cid, timeout=None):
        self.containers[cid]["running"] = False
        self.calls.append(("stop", self.containers[cid]["name"]))

    def rename(self, cid, name):
        self.calls.append(("rename", self.containers[cid]["name"], name))
        self.containers[cid]["name"] = name

    def remove_container(self, cid, force=False, v=False):
        self.calls.append(("remove", self.containers.pop(cid)["name"]))

    def inspect_container(self, cid):
        c = self.containers[cid]
        health = "unhealthy" if c["image"] in self.unhealthy_images else "healthy"
        status = "running" if c["running"] else ("exited" if c["ran"] else "created")
        return {"Name": "/" + c["name"], "State": {"Status": status, "ExitCode": 0 if c["running"] else 128,
                                                  "Health": {"Status": health, "Log": [{"Output": "probe said no"}]}}}

    def logs(self, cid, **_):
        return b"last words\n"

    def events(self, **_):
        """The fake's states never change after start, so its event stream ends at once."""
        return ClosedStream()

    def names(self) -> dict[str, bool]:
        return {c["name"]: c["running"] for c in self.containers.values()}


def _service_of(name: str) -> str:
    return name.removeprefix("site_").split("_", 1)[0]


class ClosedStream(list):
    def close(self) -> None:
        pass


class Quiet:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text): self.lines.append(text)
    def step(self, service, text): self.lines.append(f"{service}: {text}")
    def done(self, service, outcome, seconds): self.lines.append(f"{service} done: {outcome}")
    def failed(self, service, message, seconds): self.lines.append(f"{service} failed: {message}")
    def warn(self, text): self.lines.append(f"warning: {text}")


def project_at(tmp_path: Path, version: str):
    return parse_project({"services": {
        "db": {"image": f"kitctl/db:{version}", "volumes": ["data:/data"],
               "healthcheck": {"test": ["CMD", "true"], "interval": "1s"}},
        "web": {"image": f"kitctl/web:{version}", "depends_on": {"db": {"condition": "service_healthy"}},
                "healthcheck": {"test": ["CMD", "true"], "interval": "1s"}},
        "proxy": {"image": f"kitctl/proxy:{version}", "ports": ["127.0.0.1:8080:80"], "depends_on": ["web"]},
    }, "volumes": {"data": {}}}, tmp_path, tmp_path / "compose.yaml", project_name="site")


def deployed(api: FakeAPI, project) -> dict[str, Running]:
    found = {}
    for name, svc in project.services.items():
        api.add(f"old-{name}", f"site_{name}_1", svc.image)
        found[name] = Running(f"old-{name}", f"site_{name}_1", name, config_hash(project, name),
                              mounts_hash(project, name), "", "running", "healthy")
    return found


def run(api, project, current):
    hashes = {n: (config_hash(project, n), mounts_hash(project, n)) for n in project.services}
    ctx = StepContext(api, project, hashes, Quiet(), timeouts={n: 5.0 for n in project.services})
    actions = plan_services(project, hashes, current, {})
    return ctx, run_plan(ctx, [], actions)


def test_healthy_update_replaces_every_container_and_removes_the_old(tmp_path: Path) -> None:
    api = FakeAPI(unhealthy_images=set())
    current = deployed(api, project_at(tmp_path, "1"))
    ctx, outcome = run(api, project_at(tmp_path, "2"), current)
    assert sorted(outcome.changed) == ["db", "proxy", "web"]
    assert api.names() == {"site_db_1": True, "site_web_1": True, "site_proxy_1": True}
    assert all(c["image"].endswith(":2") for c in api.containers.values())
    # old containers go only after everything is healthy
    first_remove = next(i for i, c in enumerate(api.calls) if c[0] == "remove")
    last_start = max(i for i, c in enumerate(api.calls) if c[0] == "start")
    assert first_remove > last_start


def test_a_replaced_container_is_stopped_before_it_is_removed(tmp_path: Path) -> None:
    """A start-first service's old container drains (SIGTERM) before it goes: a forced remove is SIGKILL and
    fails every request it still holds."""
    api = FakeAPI(unhealthy_images=set())
    current = deployed(api, project_at(tmp_path, "1"))
    run(api, project_at(tmp_path, "2"), current)
    web_old = [c for c in api.calls if c[1:] == ("site_web_1_kitctl_old",) and c[0] in ("stop", "remove")]
    assert web_old == [("stop", "site_web_1_kitctl_old"), ("remove", "site_web_1_kitctl_old")]


def test_unhealthy_service_rolls_back_the_whole_stack(tmp_path: Path) -> None:
    api = FakeAPI(unhealthy_images={"kitctl/web:2"})
    current = deployed(api, project_at(tmp_path, "1"))
    with pytest.raises(StepFailed) as failure:
        run(api, project_at(tmp_path, "2"), current)
    assert failure.value.service == "web"
    assert "unhealthy" in str(failure.value) and "last words" in failure.value.logs
    # exactly the previous containers, under their names, running again
    assert api.names() == {"site_db_1": True, "site_web_1": True, "site_proxy_1": True}
    assert {cid for cid in api.containers} == {"old-db", "old-web", "old-proxy"}
    # the proxy depends on the failed service: its new container was prepared, never started,
    # and its old one (it holds the host port) was never stopped
    assert ("create", "site_proxy_1") in api.calls
    assert not any(c[0] in ("start", "stop") and c[1].startswith("site_proxy_1") for c in api.calls)


def test_no_op_touches_nothing(tmp_path: Path) -> None:
    api = FakeAPI(unhealthy_images=set())
    project = project_at(tmp_path, "1")
    current = deployed(api, project)
    _, outcome = run(api, project, current)
    assert outcome.changed == [] and api.calls == []


def test_one_service_at_a_time_mode_touches_nothing_after_a_failure(tmp_path: Path) -> None:
    """Over ssh:// containers are prepared with their activation: the proxy is never even created."""
    api = FakeAPI(unhealthy_images={"kitctl/web:2"})
    project = project_at(tmp_path, "2")
    current = deployed(api, project_at(tmp_path, "1"))
    hashes = {n: (config_hash(project, n), mounts_hash(project, n)) for n in project.services}
    ctx = StepContext(api, project, hashes, Quiet(), timeouts={n: 5.0 for n in project.services}, early_prepare=False)
    with pytest.raises(StepFailed):
        run_plan(ctx, [], plan_services(project, hashes, current, {}))
    assert not any(c[1].startswith("site_proxy_1") for c in api.calls)
    assert {cid for cid in api.containers} == {"old-db", "old-web", "old-proxy"}


class StillStarting:
    """A container whose probe never passes, and an event stream the engine closes at the deadline."""

    def __init__(self) -> None:
        self.opened: dict = {}

    def events(self, **kwargs):
        self.opened = kwargs
        return ClosedStream([{"status": "health_status: starting"}])

    def inspect_container(self, cid):
        return {"State": {"Status": "running", "Health": {"Status": "starting"}}}

    def exec_create(self, cid, cmd, **_):
        return {"Id": "probe"}

    def exec_start(self, exec_id, detach=False):
        return b""

    def exec_inspect(self, exec_id):
        return {"Running": False, "ExitCode": 1}  # kitctl's own run of the probe fails too

    def logs(self, cid, **_):
        return b"still booting\n"


def test_a_service_never_healthy_fails_at_its_deadline_with_its_logs(tmp_path: Path) -> None:
    import time

    from kitctl.deploy.steps import WaitReady

    api = StillStarting()
    ctx = StepContext(api, project_at(tmp_path, "1"), {}, Quiet(), timeouts={"web": 30.0}, containers={"web": "c1"})
    with pytest.raises(StepFailed) as failed:
        WaitReady("web").run(ctx)
    assert "not healthy within 30s" in str(failed.value) and failed.value.logs == "still booting\n"
    assert api.opened["filters"] == {"container": ["c1"], "type": ["container"]}
    assert time.time() + 29 < api.opened["until"] <= time.time() + 32  # the engine ends the stream at the deadline


def test_rollback_takes_every_new_container_away_before_a_previous_one_starts(tmp_path: Path) -> None:
    """The db (data volume) and the proxy (host port) are stop-first: never two of either running at once."""
    api = FakeAPI(unhealthy_images={"kitctl/proxy:2"})
    current = deployed(api, project_at(tmp_path, "1"))
    with pytest.raises(StepFailed) as failure:
        run(api, project_at(tmp_path, "2"), current)
    assert failure.value.service == "proxy"
    assert api.overlaps == []
    assert api.names() == {"site_db_1": True, "site_web_1": True, "site_proxy_1": True}
    assert set(api.containers) == {"old-db", "old-web", "old-proxy"}
    undo = api.calls[api.calls.index(("stop", "site_proxy_1_kitctl_old")) + 1:]
    undo = undo[next(i for i, c in enumerate(undo) if c[0] == "stop"):]  # from the first step of the rollback
    last_removal = max(i for i, c in enumerate(undo) if c[0] == "remove")
    first_restart = min(i for i, c in enumerate(undo) if c[0] == "start")
    assert last_removal < first_restart, undo
    for service in ("db", "proxy", "web"):  # each new container shut down cleanly before it is removed
        assert undo.index(("stop", f"site_{service}_1")) < undo.index(("remove", f"site_{service}_1"))
    # the previous db serves again before the previous proxy, which waits on what depends on it
    assert undo.index(("start", "site_db_1")) < undo.index(("start", "site_proxy_1"))


def test_a_failed_update_says_what_state_each_service_is_in(tmp_path: Path) -> None:
    from kitctl.deploy.rollback import describe

    api = FakeAPI(unhealthy_images={"kitctl/web:2"})
    current = deployed(api, project_at(tmp_path, "1"))
    with pytest.raises(StepFailed) as failure:
        run(api, project_at(tmp_path, "2"), current)
    after = {a.service: (a.state, a.ok) for a in failure.value.after}
    assert after == {"db": ("previous container running (healthy)", True),
                     "web": ("previous container running (healthy)", True),
                     "proxy": ("previous container running (healthy)", True)}
    assert describe(failure.value.after).startswith("rolled back, every service as before: db previous container")


def test_a_previous_container_that_cannot_start_again_is_named_in_the_last_line(tmp_path: Path) -> None:
    from kitctl.deploy.rollback import describe

    api = FakeAPI(unhealthy_images={"kitctl/web:2"})
    current = deployed(api, project_at(tmp_path, "1"))
    api.refuse_start.add("old-db")
    with pytest.raises(StepFailed) as failure:
        run(api, project_at(tmp_path, "2"), current)
    after = {a.service: a for a in failure.value.after}
    assert not after["db"].ok and after["db"].state == "previous container exited (code 128)"
    line = describe(failure.value.after)
    assert line.startswith("rollback incomplete (db not as before; run `kitctl up`")
    assert api.overlaps == []


def test_a_new_service_is_removed_and_a_stopped_one_stopped_again(tmp_path: Path) -> None:
    api = FakeAPI(unhealthy_images={"kitctl/web:1"})
    project = project_at(tmp_path, "1")
    hashes = {n: (config_hash(project, n), mounts_hash(project, n)) for n in project.services}
    api.add("old-db", "site_db_1", "kitctl/db:1", running=False)
    current = {"db": Running("old-db", "site_db_1", "db", *hashes["db"], "", "exited", None)}
    ctx = StepContext(api, project, hashes, Quiet(), timeouts={n: 5.0 for n in project.services})
    with pytest.raises(StepFailed) as failure:
        run_plan(ctx, [], plan_services(project, hashes, current, {}))
    assert set(api.containers) == {"old-db"} and api.names() == {"site_db_1": False}
    after = {a.service: (a.state, a.ok) for a in failure.value.after}
    assert after["db"] == ("previous container exited (code 128)", True)
    assert after["web"] == ("removed (new in this deploy)", True) and after["proxy"][1]


class WithResources(FakeAPI):
    """The fake engine with networks and volumes."""

    def __init__(self, unhealthy_images: set[str], networks: set[str] = frozenset(), volumes: set[str] = frozenset()) -> None:
        super().__init__(unhealthy_images)
        self.nets, self.vols = set(networks), set(volumes)

    def networks(self, names):
        return [{"Name": n} for n in names if n in self.nets]

    def create_network(self, name, **_):
        self.nets.add(name)

    def remove_network(self, name):
        if any(c["running"] for c in self.containers.values()):
            raise RuntimeError("network has active endpoints")
        self.nets.remove(name)

    def inspect_volume(self, name):
        from docker.errors import NotFound

        if name not in self.vols:
            raise NotFound(name)
        return {"Name": name}

    def create_volume(self, name, **_):
        self.vols.add(name)

    def remove_volume(self, name):
        if self.containers:
            raise RuntimeError("volume is in use")
        self.vols.remove(name)


def first_deploy(api, project, keep: bool = False):
    from kitctl.deploy.up import _prepare

    hashes = {n: (config_hash(project, n), mounts_hash(project, n)) for n in project.services}
    ctx = StepContext(api, project, hashes, Quiet(), timeouts={n: 5.0 for n in project.services}, keep_failed=keep)
    actions = plan_services(project, hashes, {}, {})
    return run_plan(ctx, _prepare(project, actions), actions)


def test_a_failed_first_deploy_leaves_no_container_network_or_volume(tmp_path: Path) -> None:
    api = WithResources(unhealthy_images={"kitctl/web:1"})
    with pytest.raises(StepFailed) as failure:
        first_deploy(api, project_at(tmp_path, "1"))
    assert api.containers == {} and api.nets == set() and api.vols == set()
    assert {a.service: a.state for a in failure.value.after} == {
        s: "removed (new in this deploy)" for s in ("db", "web", "proxy")}


def test_keep_leaves_a_failed_first_deploy_stopped_with_its_network_and_volume(tmp_path: Path) -> None:
    """`up --keep`: the person reads the failed containers' logs and files; nothing restarts in a loop."""
    api = WithResources(unhealthy_images={"kitctl/web:1"})
    with pytest.raises(StepFailed) as failure:
        first_deploy(api, project_at(tmp_path, "1"), keep=True)
    assert api.nets == {"site_default"} and api.vols == {"site_data"}
    kept = {c["name"]: c["running"] for c in api.containers.values()}
    assert set(kept) >= {"site_db_1", "site_web_1"} and not any(kept.values())
    states = {a.service: a.state for a in failure.value.after}
    assert all(states[s].startswith("new container left behind, ") for s in kept_services(kept))


def kept_services(kept: dict[str, bool]) -> set[str]:
    return {name.removeprefix("site_").rsplit("_", 1)[0] for name in kept}


def test_keep_does_not_stop_a_failed_update_from_rolling_back(tmp_path: Path) -> None:
    """With containers before the deploy there is something to restore: the rollback runs, --keep or not."""
    old, new = project_at(tmp_path, "1"), project_at(tmp_path, "2")
    api = FakeAPI(unhealthy_images={"kitctl/web:2"})
    current = deployed(api, old)
    hashes = {n: (config_hash(new, n), mounts_hash(new, n)) for n in new.services}
    ctx = StepContext(api, new, hashes, Quiet(), timeouts={n: 5.0 for n in new.services}, keep_failed=True)
    with pytest.raises(StepFailed):
        run_plan(ctx, [], plan_services(new, hashes, current, {}))
    assert sorted(c["name"] for c in api.containers.values() if c["running"]) == ["site_db_1", "site_proxy_1",
                                                                                   "site_web_1"]
    assert all(cid.startswith("old-") for cid, c in api.containers.items() if c["running"])


def test_a_failed_deploy_keeps_the_networks_and_volumes_it_found(tmp_path: Path) -> None:
    api = WithResources(unhealthy_images={"kitctl/web:1"}, networks={"site_default"}, volumes={"site_data"})
    with pytest.raises(StepFailed):
        first_deploy(api, project_at(tmp_path, "1"))
    assert api.nets == {"site_default"} and api.vols == {"site_data"}


class SSHEventStream(ClosedStream):
    """An event stream as docker-py gives it over ssh://: close() refuses, the paramiko channel is underneath."""

    def __init__(self, events) -> None:
        from types import SimpleNamespace

        super().__init__(events)
        self.channel = SimpleNamespace(closed=False)
        self.channel.close = lambda: setattr(self.channel, "closed", True)
        self._response = SimpleNamespace(raw=SimpleNamespace(_fp=SimpleNamespace(fp=SimpleNamespace(channel=self.channel))))

    def close(self) -> None:
        from docker.errors import DockerException

        raise DockerException("Cancellable streams not supported for the SSH protocol")


def test_over_ssh_the_health_gate_closes_its_event_stream_without_a_traceback(tmp_path: Path) -> None:
    from kitctl.deploy.steps import WaitReady

    stream = SSHEventStream([{"status": "health_status: healthy"}])
    api = StillStarting()
    api.events = lambda **_: stream
    api.inspect_container = lambda cid: {"State": {"Status": "running", "Health": {"Status": "healthy"}}}
    ctx = StepContext(api, project_at(tmp_path, "1"), {}, Quiet(), timeouts={"web": 30.0}, containers={"web": "c1"})
    WaitReady("web").run(ctx)  # returns at the first look: the stream is closed then, not at garbage collection
    assert stream.channel.closed
