"""HQ as a Swarm service (`kitctl hq deploy --orchestrator swarm`) without an engine: what the state secret
carries, that the schema is migrated once by a job before the instances start, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hq.swarm_task import unpack
from kitctl.deploy.swarm.hq_deploy import hq_deploy
from kitctl.deploy.swarm.hq_stack import HqSwarmOptions, hq_stack
from kitctl.deploy.swarm.rollout import SwarmUpdateFailed
from kitcore.errors import InvalidInput
from kitcore.licence.keys import HQKeyStore

URL = "postgresql://kit:pw@hqdb:5432/kit"


@pytest.fixture()
def options(tmp_path: Path) -> HqSwarmOptions:
    HQKeyStore(tmp_path / "hq").init()
    (tmp_path / "hq" / "risk-rules.json").write_text("{}")
    (tmp_path / "hq" / "hq.sqlite3").write_bytes(b"not carried")
    return HqSwarmOptions(hq_dir=tmp_path / "hq", database_url=URL, image="kitctl/hq:9", name="hq", network="hqnet")


def test_the_state_secret_carries_what_every_instance_needs_alike(options: HqSwarmOptions, tmp_path: Path) -> None:
    stack = hq_stack(options, "sha256:img")
    doc = json.loads(stack.state)
    assert doc["database_url"] == URL
    assert {"keys/index.json", "vault.key", "metrics-token", "risk-rules.json"} <= set(doc["files"])
    assert "hq.sqlite3" not in doc["files"]
    assert (options.hq_dir / "vault.key").stat().st_mode & 0o777 == 0o600  # made once, in the directory
    assert hq_stack(options, "sha256:img").state_name == stack.state_name  # the same content, the same secret
    unpack(doc, tmp_path / "task")
    assert (tmp_path / "task" / "vault.key").read_bytes() == (options.hq_dir / "vault.key").read_bytes()
    assert HQKeyStore(tmp_path / "task").jwks() == HQKeyStore(options.hq_dir).jwks()


def test_the_instances_never_migrate_and_show_no_secret(options: HqSwarmOptions) -> None:
    stack = hq_stack(options, "sha256:img")
    env = dict(stack.service.environment)
    assert env["KIT_HQ_MIGRATE"] == "false" and env["KIT_HQ_PUBLIC_URL"] == "http://hq:8600"
    assert not any("pw" in v for v in env.values())
    assert stack.service.command == ("python", "-m", "hq.swarm_task", "serve") and stack.service.replicas == 2
    assert stack.migrate.command == ("python", "-m", "hq.swarm_task", "migrate")
    assert stack.service.order == "start-first" and stack.service.healthcheck is not None


def test_an_instance_restarts_on_failure_only_and_site_services_keep_their_hash(options: HqSwarmOptions) -> None:
    """A stopped instance (exit 0) stays down for its operator; a crash is restarted. The site's services keep
    Swarm's "any" and, the default being left out of the hash, the spec hash they were deployed with."""
    import dataclasses

    from kitctl.deploy.swarm.params import service_kwargs

    service = hq_stack(options, "sha256:img").service
    ids = {f.name: f.name for f in service.secrets}
    assert service_kwargs(service, ids)["task_template"]["RestartPolicy"]["Condition"] == "on-failure"
    anywise = dataclasses.replace(service, restart="any")
    assert service_kwargs(anywise, ids)["task_template"]["RestartPolicy"]["Condition"] == "any"
    assert service.spec_hash() != anywise.spec_hash()
    fields = {k: v for k, v in dataclasses.asdict(anywise).items() if k != "restart"}
    assert anywise.spec_hash() == __import__("hashlib").sha256(
        json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:24]


def test_a_bundle_path_leaving_the_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        unpack({"database_url": URL, "files": {"../outside": ""}}, tmp_path / "task")
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize("change, says", [
    ({"database_url": "sqlite:///hq.db"}, "PostgreSQL"), ({"replicas": 0}, "--replicas"),
    ({"name": "HQ_1"}, "--name"), ({"hq_dir": Path("/nonexistent")}, "keys init")])
def test_bad_options_are_refused_in_one_line(options: HqSwarmOptions, change: dict, says: str) -> None:
    import dataclasses

    with pytest.raises(InvalidInput, match=says):
        dataclasses.replace(options, **change).checked()


class FakeSwarm:
    """A Swarm manager's API as far as hq_deploy uses it; `calls` in order; the job ends as `job_state`."""

    def __init__(self, job_state: str = "complete") -> None:
        self.calls: list[str] = []
        self.job_state = job_state
        self._services: dict[str, dict[str, Any]] = {}

    def info(self) -> dict:
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "n1"}}

    def inspect_image(self, ref: str) -> dict:
        return {"Id": "sha256:img"}

    def services(self, filters: dict) -> list[dict]:
        return [s for n, s in self._services.items() if n.startswith(filters.get("name", ""))]

    def networks(self, names: list[str] | None = None, filters: dict | None = None) -> list[dict]:
        return []

    def create_network(self, name: str, **kwargs: Any) -> None:
        self.calls.append(f"network {name}")

    def secrets(self, filters: dict) -> list[dict]:
        return []

    def create_secret(self, name: str, data: bytes, labels: dict) -> dict:
        self.calls.append("secret")
        return {"ID": "sec1"}

    def create_service(self, **kwargs: Any) -> dict:
        name = kwargs["name"]
        mode = {k[0].upper() + k[1:]: v for k, v in dict(kwargs["mode"]).items()}  # as the engine spells it
        self.calls.append(f"create {name} {next(iter(mode))}")
        self._services[name] = {"ID": name, "Spec": {"Name": name, "Labels": kwargs["labels"], "Mode": mode,
                                                     "TaskTemplate": kwargs["task_template"]},
                                "Version": {"Index": 1}}
        return {"ID": name}

    def remove_service(self, ident: str) -> None:
        self.calls.append(f"remove {ident}")
        self._services.pop(ident, None)

    def inspect_service(self, name: str) -> dict:
        return self._services[name]

    def tasks(self, filters: dict) -> list[dict]:
        service = self._services.get(filters["service"])
        if service is None:
            return []
        if service["Spec"]["Name"].endswith("_migrate"):
            return [{"Status": {"State": self.job_state, "Err": "exit 1" if self.job_state == "failed" else None}}]
        spec = {"ContainerSpec": service["Spec"]["TaskTemplate"]["ContainerSpec"]}
        return [{"DesiredState": "running", "Status": {"State": "running"}, "Spec": spec}] * 2


def test_the_job_migrates_once_before_the_instances_start(options: HqSwarmOptions) -> None:
    api = FakeSwarm()
    done = hq_deploy(api, options, timeout=5)  # type: ignore[arg-type]
    assert done.changed and done.migrated
    assert api.calls == ["network hqnet", "secret", "create hq_migrate ReplicatedJob", "remove hq_migrate",
                         "create hq Replicated"]
    api.calls.clear()
    again = hq_deploy(api, options, timeout=5)  # type: ignore[arg-type]
    assert not again.changed and api.calls == []  # nothing changed: not even the migration runs


def test_a_failed_migration_leaves_the_instances_alone(options: HqSwarmOptions) -> None:
    api = FakeSwarm(job_state="failed")
    with pytest.raises(SwarmUpdateFailed, match="HQ migration failed: exit 1"):
        hq_deploy(api, options, timeout=5)  # type: ignore[arg-type]
    assert not any(c.startswith("create hq ") for c in api.calls) and "remove hq_migrate" in api.calls


def test_the_cli_refuses_another_orchestrator_and_unknown_settings(capsys: pytest.CaptureFixture) -> None:
    from kitctl.cli import run

    assert run(["hq", "deploy", "--orchestrator", "engine", "--database-url", URL]) == 2
    assert "--orchestrator must be swarm" in capsys.readouterr().err
    assert run(["hq", "deploy", "--orchestrator", "swarm", "--database-url", URL, "--setting", "nonsense=1"]) == 2
    assert "--setting 'nonsense=1'" in capsys.readouterr().err
