"""backup, restore, upgrade and a second node on a real Swarm: the private engine test_swarm used
(tests/e2e/conftest.py::swarm_manager), never the shared one.

In file order, on one site of this module's own (one storefront task at first):
1. rows written to the database survive `backup` → `down --volumes` → `restore` (through services: the
   database's service alone, its dump loaded into its task, then the rest);
2. a worker engine in a namespace of its own joins over a veth link into the manager's bridge; the database
   stays on the node its label pins it to; `up --replicas 2` puts the second storefront task on the worker;
   the worker's engine is stopped: Swarm runs that task again on the manager and the shop keeps answering;
3. `upgrade --to` a new tag is Swarm's rolling update: every service runs the new tag, the rows are there.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any, Iterator

import httpx
import pytest

from tests.e2e.test_swarm import HOST, Load, running_tasks, services, up
from tests.support import swarm_engine
from tests.support.kit_stack import Stack, new_stack, prepare_hq
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

MARKER = "CREATE TABLE IF NOT EXISTS swarm_ops_marker (v text); INSERT INTO swarm_ops_marker VALUES ('蜂群-1');"
NEW_TAG = "0.1.0-swarm-ops"


@pytest.fixture(scope="module")
def engine(swarm_manager: swarm_engine.SwarmEngine) -> swarm_engine.SwarmEngine:
    return swarm_manager


@pytest.fixture(scope="module")
def site(engine: swarm_engine.SwarmEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("swarm-ops"), "so", engine.client())
    (s.root / "licence.jwt").write_text(prepare_hq(s))
    started = time.monotonic()
    up(s, engine, "--licence", f"@{s.root / 'licence.jwt'}", "--hq-keys", str(s.root / "hq-keys.json"),
       "--name", "蜂群运维", "--domain", "localhost", "--tls", "off", "--http-port", str(s.http_port),
       "--metrics-port", str(s.metrics_port))
    print(f"\nswarm ops site up in {time.monotonic() - started:.1f}s")
    yield s
    if (s.site_dir / "compose.yaml").exists():
        s.kitctl("down", "--volumes", "--yes", "--docker-host", engine.socket, check=False)
    api = engine.client().api
    for node in api.nodes():  # the database's label this site put on the manager
        labels = node["Spec"].get("Labels") or {}
        if any(s.site_id in key for key in labels):
            spec = {**node["Spec"], "Labels": {k: v for k, v in labels.items() if s.site_id not in k}}
            api.update_node(node["ID"], node["Version"]["Index"], spec)


def shop_answers(engine: swarm_engine.SwarmEngine, s: Stack) -> bool:
    try:
        return httpx.get(f"http://{engine.addr}:{s.http_port}/", headers=HOST, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def marker(s: Stack) -> list[str]:
    return s.psql("SELECT v FROM swarm_ops_marker")


def test_rows_survive_backup_down_and_restore_through_services(site: Stack, engine, tmp_path) -> None:
    site.psql(MARKER)
    archive, identity = site.root / "swarm.age", site.root / "identity.txt"
    started = time.monotonic()
    done = site.kitctl("backup", "-o", str(archive), "--identity", str(identity), "--docker-host", engine.socket)
    assert "backup written" in done.stdout, done.stdout
    site.kitctl("down", "--volumes", "--yes", "--docker-host", engine.socket)
    assert not services(engine, site)
    assert not [v for v in engine.client().volumes.list() if site.site_id in v.name]
    shutil.move(str(site.site_dir), str(site.root / "before-restore"))  # as on a fresh host
    site.site_dir = site.root / "restored" / site.site_id
    done = site.kitctl("restore", str(archive), "--identity", str(identity), "--docker-host", engine.socket)
    print(f"\nswarm backup → down → restore: {time.monotonic() - started:.1f}s")
    assert "restored" in done.stdout, (done.stdout, done.stderr)
    found = services(engine, site)
    assert sorted(found) == sorted(swarm_engine.KIT_SERVICES)  # as Swarm services again, not containers
    assert not engine.client().api.containers(all=True, filters={"label": f"com.docker.compose.project=kit-{site.site_id}"})
    assert marker(site) == ["蜂群-1"]
    assert shop_answers(engine, site)
    again = site.kitctl("restore", str(archive), "--identity", str(identity), "--docker-host", engine.socket,
                        "--site-dir", str(tmp_path / site.site_id), check=False, site=False)
    assert again.returncode == 2 and "already runs Swarm services" in again.stderr, (again.stdout, again.stderr)


def node_of(task: dict[str, Any]) -> str:
    return task["NodeID"]


def test_a_worker_node_joins_takes_a_storefront_task_and_its_loss_is_rescheduled(site: Stack, engine) -> None:
    from kitcore import __version__

    api = engine.client().api
    manager_id = api.info()["Swarm"]["NodeID"]
    started = time.monotonic()
    worker = swarm_engine.add_worker(engine, [f"kitctl/storefront:{__version__}"])
    try:
        joined = time.monotonic() - started
        worker_id = worker.client().api.info()["Swarm"]["NodeID"]
        eventually(lambda: {n["ID"]: n["Status"]["State"] for n in api.nodes()}.get(worker_id) == "ready", 60, 0.5,
                   what="the worker ready")
        up(site, engine, "--replicas", "2")
        tasks = running_tasks(services(engine, site)["storefront"])
        assert sorted(map(node_of, tasks)) == sorted([manager_id, worker_id]), tasks  # one on each node
        labelled = [n["ID"] for n in api.nodes() if (n["Spec"].get("Labels") or {}).get(f"com.kitctl.db.{site.site_id}")]
        assert labelled == [manager_id]
        assert {node_of(t) for t in running_tasks(services(engine, site)["db"])} == {manager_id}
        with Load(engine, site) as load:
            stopped_at = time.monotonic()
            swarm_engine.stop(worker)  # the node's engine goes, its tasks with it
            eventually(lambda: [node_of(t) for t in running_tasks(services(engine, site)["storefront"])]
                       == [manager_id, manager_id], 180, 1, what="the worker's task run again on the manager")
            rescheduled = time.monotonic() - stopped_at
            time.sleep(3)
        down = {n["ID"]: n["Status"]["State"] for n in api.nodes()}[worker_id]
        print(f"\nworker joined in {joined:.1f}s; its storefront task rescheduled {rescheduled:.1f}s after its engine "
              f"stopped (node {down}); storefront over the overlay {load.counts}; through the proxy {load.proxy}")
        assert down == "down"
        assert shop_answers(engine, site)
        # the shop kept answering: a request to the stopped node's task may time out until Swarm takes it out
        # of DNS, every one after that is answered
        assert load.proxy["ok"] > 20 and load.counts["ok"] > 20, (load.counts, load.proxy)
        assert load.counts["failed"] <= 10, load.counts
    finally:
        swarm_engine.stop(worker)
        for node in api.nodes():
            if node["ID"] != manager_id:
                api.remove_node(node["ID"], force=True)


def test_upgrade_to_a_new_tag_rolls_every_service_and_keeps_the_rows(site: Stack, engine) -> None:
    from kitcore import __version__

    client = engine.client()
    for service in swarm_engine.KIT_SERVICES:
        client.images.get(f"kitctl/{service}:{__version__}").tag(f"kitctl/{service}", NEW_TAG)
    try:
        before = {n: s.attrs["Version"]["Index"] for n, s in services(engine, site).items()}
        started = time.monotonic()
        done = site.kitctl("upgrade", "--to", NEW_TAG, "--docker-host", engine.socket)
        rolled = time.monotonic() - started
        print(f"\nswarm upgrade to {NEW_TAG}: {rolled:.1f}s")
        assert f"compose.yaml now pins version {NEW_TAG}" in done.stdout, done.stdout
        after = services(engine, site)
        for name, service in after.items():
            labels = service.attrs["Spec"]["Labels"]
            assert labels["io.kitctl.image"] == f"kitctl/{name}:{NEW_TAG}", (name, labels)
            assert service.attrs["Version"]["Index"] > before[name]
            assert (service.attrs.get("UpdateStatus") or {}).get("State", "completed") == "completed", name
        assert len(running_tasks(after["storefront"])) == 2
        assert marker(site) == ["蜂群-1"]
        assert shop_answers(engine, site)
        assert "nothing to do" in site.kitctl("upgrade", "--to", NEW_TAG, "--docker-host", engine.socket).stdout
        shown = json.loads(site.kitctl("status", "--json", "--docker-host", engine.socket).stdout)
        assert all(r["health"] == "healthy" for r in shown["services"]), shown
    finally:
        for service in swarm_engine.KIT_SERVICES:
            client.api.remove_image(f"kitctl/{service}:{NEW_TAG}", noprune=True)
