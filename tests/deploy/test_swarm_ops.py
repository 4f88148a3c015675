"""backup/restore/upgrade on a Swarm site (kitctl.deploy.swarm.ops): which orchestrator, which node; a fake
Engine API stands in for the manager (the real one is tests/e2e/test_swarm_ops.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from docker.errors import NotFound

from kitctl.deploy.swarm import ops
from kitcore.errors import InvalidInput
from tests.deploy.test_swarm_spec import SITE, project

HERE, THERE = "node-here", "node-there"


class FakeManager:
    """A Swarm manager's API: its nodes, the site's services and tasks, volumes; records node updates."""

    def __init__(self, manager: bool = True, services: list[dict] | None = None, tasks: list[dict] | None = None,
                 labels: dict[str, dict[str, str]] | None = None, volumes: set[str] = frozenset()) -> None:
        self.manager, self._services, self._tasks, self.volumes = manager, services or [], tasks or [], volumes
        self.labels = labels if labels is not None else {HERE: {}, THERE: {}}
        self.updates: list[tuple[str, dict]] = []

    def info(self) -> dict:
        state = "active" if self.manager else "inactive"
        return {"Swarm": {"LocalNodeState": state, "ControlAvailable": self.manager, "NodeID": HERE}}

    def services(self, filters: dict) -> list[dict]:
        return self._services

    def tasks(self, filters: dict) -> list[dict]:
        return [t for t in self._tasks if t["service"] == filters["service"]]

    def nodes(self) -> list[dict]:
        return [self.inspect_node(n) for n in self.labels]

    def inspect_node(self, node: str) -> dict:
        return {"ID": node, "Spec": {"Role": "worker", "Labels": dict(self.labels[node])}, "Version": {"Index": 7},
                "Description": {"Hostname": f"host-of-{node}"}}

    def update_node(self, node: str, version: int, spec: dict) -> None:
        self.updates.append((node, spec["Labels"]))
        self.labels[node] = spec["Labels"]

    def inspect_volume(self, name: str) -> dict:
        if name not in self.volumes:
            raise NotFound(name)
        return {"Name": name}


def task(service: str, node: str, state: str = "running") -> dict:
    return {"service": service, "NodeID": node, "DesiredState": "running", "Status": {"State": state}}


def test_a_site_is_on_swarm_only_with_its_services_on_a_manager(tmp_path: Path) -> None:
    p = project(tmp_path)
    assert ops.orchestrator_of(FakeManager(services=[{"ID": "s"}]), p) == "swarm"
    assert ops.orchestrator_of(FakeManager(services=[]), p) == "engine"
    assert ops.orchestrator_of(FakeManager(manager=False, services=[{"ID": "s"}]), p) == "engine"


def test_a_backup_needs_the_database_task_on_the_node_kitctl_talks_to(tmp_path: Path) -> None:
    p = project(tmp_path)
    name = f"{p.name}_db"
    ops.require_backup_tasks_here(FakeManager(tasks=[task(name, HERE)]), p, "db")
    with pytest.raises(InvalidInput, match="runs on Swarm node host-of-node-there.*--docker-host"):
        ops.require_backup_tasks_here(FakeManager(tasks=[task(name, THERE)]), p, "db")
    with pytest.raises(InvalidInput, match="no running Swarm task"):
        ops.require_backup_tasks_here(FakeManager(tasks=[task(name, HERE, "starting")]), p, "db")


def test_a_swarm_restore_needs_a_manager_without_the_sites_services_or_volumes(tmp_path: Path) -> None:
    p = project(tmp_path)
    ops.check_fresh_swarm(FakeManager(), p)
    with pytest.raises(InvalidInput, match="restore it on a Swarm manager"):
        ops.check_fresh_swarm(FakeManager(manager=False), p)
    with pytest.raises(InvalidInput, match="already runs Swarm services"):
        ops.check_fresh_swarm(FakeManager(services=[{"ID": "s"}]), p)
    with pytest.raises(InvalidInput, match="already exists"):
        ops.check_fresh_swarm(FakeManager(volumes={p.volumes["db-data"].name}), p)


def test_a_restore_pins_the_database_here_and_refuses_when_another_node_holds_it(tmp_path: Path) -> None:
    p = project(tmp_path)
    key = f"com.kitctl.db.{SITE}"
    here = FakeManager()
    ops.pin_db_here(here, p)
    assert here.updates == [(HERE, {key: "true"})]
    ops.pin_db_here(here, p)  # already labelled: nothing changes
    assert len(here.updates) == 1
    there = FakeManager(labels={HERE: {}, THERE: {key: "true"}})
    with pytest.raises(InvalidInput, match=f"host-of-node-there carries {key}"):
        ops.pin_db_here(there, p)
    assert there.updates == []


def test_only_keeps_the_named_services(tmp_path: Path) -> None:
    p = project(tmp_path)
    assert list(ops.only(p, ["db"]).services) == ["db"]
    assert set(p.services) == {"db", "storefront", "proxy"}


class SwarmBackupAPI:
    """FakeEngineAPI (pg_dump and the proxy's volume) on a Swarm manager whose site tasks run on `node`."""

    def __init__(self, node: str) -> None:
        from tests.security.backup_support import FakeEngineAPI

        self.engine, self.node = FakeEngineAPI(b"PGDMP dump"), node

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def info(self) -> dict:
        return FakeManager().info()

    def services(self, filters: dict) -> list[dict]:
        return [{"ID": "svc"}]

    def tasks(self, filters: dict) -> list[dict]:
        return [task(filters["service"], self.node)]

    def inspect_node(self, node: str) -> dict:
        return FakeManager().inspect_node(node)


def test_a_backup_of_a_swarm_site_records_it_and_refuses_a_task_on_another_node(tmp_path: Path) -> None:
    from kitctl.deploy.backup import backup
    from kitctl.deploy.backup_archive import read_archive
    from kitctl.deploy.compose import load_project
    from tests.security.backup_support import FakeClient, make_site

    site, _key = make_site(tmp_path)
    p = load_project(site)
    client = FakeClient(b"PGDMP dump")
    backup(client, p, tmp_path / "engine.tgz", recipients=None)  # type: ignore[arg-type]
    assert read_archive(tmp_path / "engine.tgz", tmp_path / "e")["orchestrator"] == "engine"
    client.api = SwarmBackupAPI(HERE)
    backup(client, p, tmp_path / "swarm.tgz", recipients=None)  # type: ignore[arg-type]
    assert read_archive(tmp_path / "swarm.tgz", tmp_path / "s")["orchestrator"] == "swarm"
    client.api = SwarmBackupAPI(THERE)
    with pytest.raises(InvalidInput, match="runs on Swarm node host-of-node-there"):
        backup(client, p, tmp_path / "elsewhere.tgz", recipients=None)  # type: ignore[arg-type]
    assert not (tmp_path / "elsewhere.tgz").exists()


def test_a_storefront_task_on_another_node_is_no_container_to_exec_in() -> None:
    from kitctl.deploy.swarm.tasks import running_container

    class Tasks(FakeManager):
        def tasks(self, filters: dict) -> list[dict]:
            found = [{**task("shop_storefront", THERE), "Status": {"State": "running", "ContainerStatus": {
                "ContainerID": "there"}}}, {**task("shop_storefront", HERE), "Status": {"State": "running",
                                                                                       "ContainerStatus": {"ContainerID": "here"}}}]
            return [t for t in found if filters.get("node") in (None, t["NodeID"])]

    assert running_container(Tasks(), "shop_storefront") == "here"

    class OnlyThere(Tasks):
        def tasks(self, filters: dict) -> list[dict]:
            return [t for t in super().tasks({}) if t["NodeID"] == THERE]

    assert running_container(OnlyThere(), "shop_storefront") is None  # the engine would answer 404 to an exec
