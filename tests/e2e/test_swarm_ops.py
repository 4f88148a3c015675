"""backup, restore, upgrade and a second node on a real Swarm: the private engine and the site test_swarm
used (tests/e2e/conftest.py: swarm_manager, swarm_site; 2 storefront tasks), never the shared engine.

In file order:
1. rows written to the database survive `backup` → `down --volumes` (nothing of the site left: services,
   configs, secrets, network, volumes) → `restore` (through services: the database's service alone, its
   dump loaded into its task, then the rest);
2. `upgrade --to` a new tag is Swarm's rolling update: every service runs the new tag, the rows are there;
3. a worker engine in a namespace of its own joins over a veth link into the manager's bridge; the database
   stays on the node its label pins it to; `up --replicas 3` puts the third storefront task on the worker;
   the worker's engine is stopped: Swarm runs that task again on the manager and the shop keeps answering.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any, Iterator

import httpx
import pytest

from kitctl.deploy.engine_exec import run_in
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
def site(swarm_site: Stack, engine: swarm_engine.SwarmEngine) -> Iterator[Stack]:
    if not (swarm_site.site_dir / "compose.yaml").exists():  # this module alone: deploy as test_swarm's first test
        s = swarm_site
        up(s, engine, "--licence", f"@{s.root / 'licence.jwt'}", "--hq-keys", str(s.root / "hq-keys.json"),
           "--name", "蜂群站点", "--domain", "localhost", "--tls", "off", "--http-port", str(s.http_port),
           "--metrics-port", str(s.metrics_port), "--replicas", "2")
    yield swarm_site
    client = engine.client()
    for service in swarm_engine.KIT_SERVICES:  # the upgrade's tags (the images stay: the site runs them by id)
        if client.images.list(f"kitctl/{service}:{NEW_TAG}"):
            client.api.remove_image(f"kitctl/{service}:{NEW_TAG}", noprune=True)


def shop_answers(engine: swarm_engine.SwarmEngine, s: Stack) -> bool:
    try:
        return httpx.get(f"http://{engine.addr}:{s.http_port}/", headers=HOST, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def psql(engine: swarm_engine.SwarmEngine, s: Stack, query: str) -> list[str]:
    """In the database's running task (an update leaves the old task's container stopped beside it)."""
    found = engine.client().containers.list(filters={"label": [f"com.kitctl.site={s.site_id}",
                                                               "com.kitctl.service=db"], "status": "running"})
    assert len(found) == 1, found
    done = run_in(found[0], ["psql", "-X", "-qtA", "-U", "postgres", "-d", "kit", "-c", query])
    assert done.exit_code == 0, done.output.decode()[-400:]
    return [line for line in done.stdout.decode().splitlines() if line.strip()]


def marker(engine: swarm_engine.SwarmEngine, s: Stack) -> list[str]:
    return psql(engine, s, "SELECT v FROM swarm_ops_marker")


def test_rows_survive_backup_down_and_restore_through_services(site: Stack, engine, tmp_path) -> None:
    psql(engine, site, MARKER)
    archive, identity = site.root / "swarm.age", site.root / "identity.txt"
    started = time.monotonic()
    done = site.kitctl("backup", "-o", str(archive), "--identity", str(identity), "--docker-host", engine.socket)
    assert "backup written" in done.stdout, done.stdout
    done = site.kitctl("down", "--volumes", "--yes", "--docker-host", engine.socket)
    assert "removed swarm service" in done.stdout, done.stdout
    api, ours = engine.client().api, {"label": f"com.kitctl.site={site.site_id}"}
    assert not api.services(filters=ours) and not api.configs(filters=ours) and not api.secrets(filters=ours)
    assert not api.networks(filters=ours)
    assert not [v for v in api.volumes()["Volumes"] or [] if site.site_id in v["Name"]]
    shutil.move(str(site.site_dir), str(site.root / "before-restore"))  # as on a fresh host
    site.site_dir = site.root / "restored" / site.site_id
    done = site.kitctl("restore", str(archive), "--identity", str(identity), "--docker-host", engine.socket)
    print(f"\nswarm backup → down → restore: {time.monotonic() - started:.1f}s")
    assert "restored" in done.stdout, (done.stdout, done.stderr)
    found = services(engine, site)
    assert sorted(found) == sorted(swarm_engine.KIT_SERVICES)  # as Swarm services again, not containers
    assert not engine.client().api.containers(all=True, filters={"label": f"com.docker.compose.project=kit-{site.site_id}"})
    assert marker(engine, site) == ["蜂群-1"]
    assert shop_answers(engine, site)
    again = site.kitctl("restore", str(archive), "--identity", str(identity), "--docker-host", engine.socket,
                        "--site-dir", str(tmp_path / site.site_id), check=False, site=False)
    assert again.returncode == 2 and "already runs Swarm services" in again.stderr, (again.stdout, again.stderr)


def test_upgrade_to_a_new_tag_rolls_every_service_and_keeps_the_rows(site: Stack, engine) -> None:
    from kitcore import __version__

    client = engine.client()
    for service in swarm_engine.KIT_SERVICES:  # the tags go with the module (the next test's site runs them)
        client.images.get(f"kitctl/{service}:{__version__}").tag(f"kitctl/{service}", NEW_TAG)
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
    assert marker(engine, site) == ["蜂群-1"]
    assert shop_answers(engine, site)
    assert "nothing to do" in site.kitctl("upgrade", "--to", NEW_TAG, "--docker-host", engine.socket).stdout
    shown = json.loads(site.kitctl("status", "--json", "--docker-host", engine.socket).stdout)
    assert all(r["health"] == "healthy" for r in shown["services"]), shown


def node_of(task: dict[str, Any]) -> str:
    return task["NodeID"]


def test_a_worker_node_joins_takes_a_storefront_task_and_its_loss_is_rescheduled(site: Stack, engine) -> None:
    api = engine.client().api
    manager_id = api.info()["Swarm"]["NodeID"]
    started = time.monotonic()
    worker = swarm_engine.add_worker(engine, [f"kitctl/storefront:{NEW_TAG}"])  # what the site runs
    try:
        joined = time.monotonic() - started
        worker_id = worker.client().api.info()["Swarm"]["NodeID"]
        eventually(lambda: {n["ID"]: n["Status"]["State"] for n in api.nodes()}.get(worker_id) == "ready", 60, 0.5,
                   what="the worker ready")
        up(site, engine, "--replicas", "3")
        tasks = running_tasks(services(engine, site)["storefront"])
        assert sorted(map(node_of, tasks)) == sorted([manager_id, manager_id, worker_id]), tasks  # the new one there
        labelled = [n["ID"] for n in api.nodes() if (n["Spec"].get("Labels") or {}).get(f"com.kitctl.db.{site.site_id}")]
        assert labelled == [manager_id]
        assert {node_of(t) for t in running_tasks(services(engine, site)["db"])} == {manager_id}
        with Load(engine, site) as load:
            stopping = time.monotonic()
            swarm_engine.stop(worker)  # the node's engine goes (its containers stopped first), its tasks with it
            stopped = time.monotonic()
            eventually(lambda: [node_of(t) for t in running_tasks(services(engine, site)["storefront"])]
                       == [manager_id] * 3, 180, 0.5, what="the worker's task run again on the manager")
            rescheduled = time.monotonic() - stopped
            time.sleep(3)
        down = {n["ID"]: n["Status"]["State"] for n in api.nodes()}[worker_id]
        print(f"\nworker joined in {joined:.1f}s; its engine stopped in {stopped - stopping:.1f}s; its storefront task "
              f"running again on the manager {rescheduled:.1f}s later (node {down}); storefront over the overlay "
              f"{load.counts}; through the proxy {load.proxy}")
        assert down == "down"
        assert shop_answers(engine, site)
        # the shop kept answering: a request to the stopped node's task may time out until Swarm takes it out
        # of DNS, every one after that is answered
        assert load.proxy["ok"] > 20 and load.counts["ok"] > 20, (load.counts, load.proxy)
        assert load.counts["failed"] <= 10 and load.proxy["failed"] <= 10, (load.counts, load.proxy)
    finally:
        swarm_engine.stop(worker)
        for node in api.nodes():
            if node["ID"] != manager_id:
                api.remove_node(node["ID"], force=True)
