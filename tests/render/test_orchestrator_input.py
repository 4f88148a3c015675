"""The orchestrator is a recorded render input (like --replicas): `up --orchestrator swarm` records it, a later
`up` without the flag keeps it, and switching a deployed site to the other orchestrator is refused (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kitctl.cli import run
from kitctl.deploy import orchestrator
from kitctl.render import render_site
from kitcore.errors import InvalidInput


def lock_inputs(site: Path) -> dict[str, Any]:
    return json.loads((site / "kitctl.lock").read_text())["inputs"]


def test_the_orchestrator_is_recorded_kept_and_reset(flags) -> None:
    site = render_site(flags).site_dir
    assert lock_inputs(site)["orchestrator"] == "engine"
    compose = (site / "compose.yaml").read_bytes()
    render_site({**flags, "orchestrator": "swarm"})
    assert lock_inputs(site)["orchestrator"] == "swarm" and orchestrator.recorded(site) == "swarm"
    assert (site / "compose.yaml").read_bytes() == compose  # no rendered file says it: no service restarts
    render_site({"site_dir": flags["site_dir"], "primary_colour": "#00aa55"})  # a later render without the flag
    assert orchestrator.recorded(site) == "swarm"
    render_site({"site_dir": flags["site_dir"], "reset": ["orchestrator"]})
    assert orchestrator.recorded(site) == "engine"


def test_a_site_rendered_before_the_input_records_none(tmp_path: Path) -> None:
    assert orchestrator.recorded(tmp_path) is None
    (tmp_path / "kitctl.lock").write_text(json.dumps({"inputs": {"replicas": 2}}))
    assert orchestrator.recorded(tmp_path) is None


def test_an_unknown_orchestrator_is_refused_in_one_line(flags) -> None:
    with pytest.raises(InvalidInput, match="--orchestrator must be one of: engine, swarm"):
        orchestrator.checked("kubernetes")
    with pytest.raises((InvalidInput, ValueError)):
        render_site({**flags, "orchestrator": "kubernetes"})


class FakeApi:
    """What an engine answers about one project: its Swarm services and its containers."""

    def __init__(self, services: list[dict] | None = None, containers: list[dict] | None = None) -> None:
        self._services, self._containers = services or [], containers or []

    def info(self) -> dict:
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "n1"}}

    def services(self, filters: dict) -> list[dict]:
        return self._services

    def containers(self, all: bool, filters: dict) -> list[dict]:
        return self._containers


def test_what_runs_the_project_is_read_from_the_engine() -> None:
    assert orchestrator.deployed_on(FakeApi(services=[{"ID": "s"}]), "kit-x") == "swarm"
    container = {"Id": "c", "Names": ["/kit-x-db-1"], "Labels": {"com.docker.compose.service": "db"},
                 "State": "running", "Status": "Up", "Image": "db", "Ports": []}
    assert orchestrator.deployed_on(FakeApi(containers=[container]), "kit-x") == "engine"
    assert orchestrator.deployed_on(FakeApi(), "kit-x") is None


def test_switching_a_deployed_site_is_refused_and_an_undeployed_one_may_switch(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="deployed with --orchestrator swarm: switching to engine is refused"):
        orchestrator.refuse_switch("engine", tmp_path, "swarm")
    orchestrator.refuse_switch("engine", tmp_path, None)  # nothing runs: the new choice is recorded
    orchestrator.refuse_switch("swarm", tmp_path, "swarm")
    orchestrator.refuse_switch(None, tmp_path, "swarm")  # no flag: the recorded one is kept


def test_up_refuses_the_switch_before_rendering_or_deploying(flags, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import kitctl.engine as engine

    site = render_site({**flags, "orchestrator": "swarm"}).site_dir
    before = (site / "kitctl.lock").read_bytes()
    monkeypatch.setattr(engine, "connect", lambda host=None: SimpleNamespace(api=FakeApi(services=[{"ID": "s"}])))
    code = run(["up", "--orchestrator", "engine", "--site-dir", str(site)])
    said = capsys.readouterr()
    assert code == 2, said
    assert "deployed with --orchestrator swarm: switching to engine is refused" in said.err
    assert len([line for line in (said.out + said.err).splitlines() if line.strip()]) == 1
    assert (site / "kitctl.lock").read_bytes() == before  # not rendered again


def test_up_without_the_flag_deploys_to_the_recorded_orchestrator(flags, monkeypatch: pytest.MonkeyPatch) -> None:
    import kitctl.deploy.outcome as outcome

    site = render_site({**flags, "orchestrator": "swarm"}).site_dir
    seen: list[str] = []
    monkeypatch.setattr(outcome, "refresh_plugin_services", lambda *a: None)
    monkeypatch.setattr(outcome, "deploy_and_report", lambda options, verb: seen.append(options.orchestrator) or 0)
    assert run(["up", "--site-dir", str(site)]) == 0
    assert seen == ["swarm"]


def test_the_fast_plain_up_deploys_to_the_recorded_orchestrator_too(flags, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kitctl up` with no input skips the full CLI (kitctl.entry.plain_up): it must read the record as well."""
    import kitctl.deploy.outcome as outcome
    import kitctl.entry as entry

    site = render_site({**flags, "orchestrator": "swarm"}).site_dir
    seen: list[str] = []
    monkeypatch.setattr(entry, "print_if_unchanged", lambda *a: False)
    monkeypatch.setattr(outcome, "refresh_plugin_services", lambda *a: None)
    monkeypatch.setattr(outcome, "deploy_and_report", lambda options, verb: seen.append(options.orchestrator) or 0)
    assert entry.plain_up(["--site-dir", str(site)]) == 0
    assert seen == ["swarm"]
