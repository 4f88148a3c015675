"""kitctl's own run of a new container's healthcheck (kitctl.deploy.probe), against a fake engine API.

The engine's first probe comes one interval after the start; these tests show
that kitctl's gate passes as soon as the same command passes in the container,
and never passes, or fails, on anything else.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kitctl.deploy.compose import parse_project
from kitctl.deploy.steps import StepContext, StepFailed, WaitReady
from kitctl.deploy.actions import plan_services
from kitctl.deploy.container_hashes import config_hash, mounts_hash
from kitctl.deploy.runner import run_plan
from tests.deploy.test_runner import ClosedStream, FakeAPI, Quiet, deployed, project_at


class Starting:
    """A running container the engine still calls `starting`; its probe exits with `codes` in turn."""

    def __init__(self, codes: list[int], status: str = "running") -> None:
        self.codes = codes
        self.status = status
        self.commands: list[list[str]] = []
        self.stream_closed = False

    def events(self, until, **_):
        api = self

        class Open(ClosedStream):  # an engine stream that stays open until kitctl closes it or `until` passes
            def __iter__(self):
                while not api.stream_closed and time.time() < until:
                    time.sleep(0.01)
                return iter(())

            def close(self) -> None:
                api.stream_closed = True

        return Open()

    def inspect_container(self, cid):
        return {"State": {"Status": self.status, "Health": {"Status": "starting"}}}

    def exec_create(self, cid, cmd, **_):
        self.commands.append(cmd)
        return {"Id": f"exec{len(self.commands)}"}

    def exec_start(self, exec_id, detach=False):
        assert detach
        return b""

    def exec_inspect(self, exec_id):
        n = int(exec_id.removeprefix("exec")) - 1
        return {"Running": False, "ExitCode": self.codes[min(n, len(self.codes) - 1)]}

    def logs(self, cid, **_):
        return b"booting\n"


def context(tmp_path: Path, api, test, own_probes: bool = True) -> StepContext:
    project = parse_project({"services": {
        "web": {"image": "kitctl/web:1", "healthcheck": {"test": test, "interval": "30s", "timeout": "3s"}},
    }}, tmp_path, tmp_path / "compose.yaml", project_name="site")
    return StepContext(api, project, {}, Quiet(), timeouts={"web": 1.5}, containers={"web": "c1"},
                       own_probes=own_probes)


def test_the_gate_passes_once_the_healthcheck_command_passes_in_the_container(tmp_path: Path) -> None:
    api = Starting([1, 1, 0])
    started = time.monotonic()
    WaitReady("web").run(context(tmp_path, api, ["CMD", "probe", "http://127.0.0.1:8000/healthz"]))
    assert time.monotonic() - started < 1.4  # long before the engine's first probe (30 s interval)
    assert api.commands == [["probe", "http://127.0.0.1:8000/healthz"]] * 3
    assert api.stream_closed


def test_a_shell_healthcheck_runs_through_the_shell_as_the_engine_runs_it(tmp_path: Path) -> None:
    api = Starting([0])
    WaitReady("web").run(context(tmp_path, api, "pg_isready -q && test -f /ready"))
    assert api.commands == [["/bin/sh", "-c", "pg_isready -q && test -f /ready"]]


def test_a_probe_that_never_passes_still_fails_at_the_deadline(tmp_path: Path) -> None:
    api = Starting([1])
    with pytest.raises(StepFailed) as failed:
        WaitReady("web").run(context(tmp_path, api, ["CMD", "false"]))
    assert "not healthy within 2s" in str(failed.value) and len(api.commands) >= 3


@pytest.mark.parametrize("status", ["created", "restarting"])
def test_no_probe_passes_a_container_that_is_not_running(tmp_path: Path, status: str) -> None:
    api = Starting([0], status=status)
    with pytest.raises(StepFailed):
        WaitReady("web").run(context(tmp_path, api, ["CMD", "true"]))
    assert api.commands == []


def test_without_own_probes_only_the_engine_decides(tmp_path: Path) -> None:
    api = Starting([0])
    with pytest.raises(StepFailed, match="not healthy within"):
        WaitReady("web").run(context(tmp_path, api, ["CMD", "true"], own_probes=False))
    assert api.commands == []


class EngineStillStarting(FakeAPI):
    """The runner's fake engine, whose own probe never reported yet: only kitctl's probe can pass a service,
    and each container's passes on its third run."""

    def __init__(self, unhealthy_images: frozenset[str] = frozenset()) -> None:
        super().__init__(set(unhealthy_images))
        self.runs: dict[str, int] = {}
        self.closed = 0

    def inspect_container(self, cid):
        found = super().inspect_container(cid)
        if "_proxy_" in found["Name"]:  # no healthcheck: no Health at all
            del found["State"]["Health"]
        elif found["State"]["Health"]["Status"] != "unhealthy":
            found["State"]["Health"] = {"Status": "starting"}
        return found

    def events(self, until, **_):
        api = self

        class Open(ClosedStream):
            def __iter__(self):
                while time.time() < until and not getattr(self, "done", False):
                    time.sleep(0.01)
                return iter(())

            def close(self) -> None:
                self.done = True
                api.closed += 1

        return Open()

    def exec_create(self, cid, cmd, **_):
        return {"Id": cid}

    def exec_start(self, exec_id, detach=False):
        self.runs[exec_id] = self.runs.get(exec_id, 0) + 1

    def exec_inspect(self, exec_id):
        passed = self.runs[exec_id] >= 3
        if passed and self.runs[exec_id] == 3:
            self.calls.append(("probe passed", self.containers[exec_id]["name"]))
        return {"Running": False, "ExitCode": 0 if passed else 1}


def test_each_service_starts_only_after_its_dependency_passed_its_probe(tmp_path: Path) -> None:
    api = EngineStillStarting()
    project = project_at(tmp_path, "1")
    hashes = {n: (config_hash(project, n), mounts_hash(project, n)) for n in project.services}
    ctx = StepContext(api, project, hashes, Quiet(), timeouts={n: 10.0 for n in project.services})
    run_plan(ctx, [], plan_services(project, hashes, {}, {}))
    order = [c for c in api.calls if c[0] in ("start", "probe passed")]
    assert order == [("start", "site_db_1"), ("probe passed", "site_db_1"),
                     ("start", "site_web_1"), ("probe passed", "site_web_1"), ("start", "site_proxy_1")]
    assert api.closed == 3  # every gate closed its event stream (the proxy, without a healthcheck, ready when running)


class Chatty(Starting):
    """Every probe's exec is an event of the container: the stream never falls quiet."""

    def events(self, until, **_):
        api = self

        class Busy(ClosedStream):
            def __iter__(self):
                while not api.stream_closed and time.time() < until:
                    time.sleep(0.005)
                    yield {"status": "exec_die"}

            def close(self) -> None:
                api.stream_closed = True

        return Busy()


def test_events_of_the_probes_own_execs_do_not_make_it_run_back_to_back(tmp_path: Path) -> None:
    api = Chatty([1])
    with pytest.raises(StepFailed):
        WaitReady("web").run(context(tmp_path, api, ["CMD", "false"]))
    assert 3 <= len(api.commands) <= 5  # 1.5 s of gaps from 0.25 s growing 1.5x, not one probe per event


def test_a_rollback_waits_for_the_engines_own_verdict_on_a_restored_container(tmp_path: Path) -> None:
    """After a failed deploy `kitctl status` must agree with the closing line: a previous container started
    again is not passed by kitctl's probe, only by the engine (here it still says `starting`)."""
    api = EngineStillStarting(frozenset({"kitctl/web:2"}))
    current = deployed(api, project_at(tmp_path, "1"))
    project = project_at(tmp_path, "2")
    hashes = {n: (config_hash(project, n), mounts_hash(project, n)) for n in project.services}
    ctx = StepContext(api, project, hashes, Quiet(), timeouts={n: 2.0 for n in project.services})
    with pytest.raises(StepFailed) as failed:
        run_plan(ctx, [], plan_services(project, hashes, current, {}))
    after = {a.service: (a.state, a.ok) for a in failed.value.after}
    assert after["db"] == ("previous container running (starting)", False)
    assert "old-db" not in api.runs and max(api.runs.values()) >= 3  # the new db passed by its probe, the old not


class EngineProbed(Starting):
    """The engine already ran its first probe (a failed one): its log has an entry."""

    def inspect_container(self, cid):
        return {"State": {"Status": "running", "Health": {"Status": "starting", "Log": [{"ExitCode": 1}]}}}


def test_kitctl_stops_probing_once_the_engine_ran_its_first_probe(tmp_path: Path) -> None:
    api = EngineProbed([0])
    with pytest.raises(StepFailed, match="not healthy within"):
        WaitReady("web").run(context(tmp_path, api, ["CMD", "true"]))
    assert api.commands == []  # the engine's cadence from here: the service's log keeps its own lines
