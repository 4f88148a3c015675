"""HQ as a Swarm service with 2 instances on PostgreSQL (`kitctl hq deploy --orchestrator swarm`), and a Swarm
site pointed at it, on the session's private Swarm engine (tests/e2e/conftest.py, shared with test_swarm and test_swarm_ops).

In file order: HQ is deployed (the schema migrated once, by a one-shot job; a second deploy does nothing);
the site comes up on HQ and sells; a steady stream of orders crosses the site's colour change and a killed
storefront task with no order lost or duplicated (HQ's orders against the site's); then each HQ instance in
turn is stopped (`docker stop`, the service left at 2: HQ restarts on failure only, so it stays down) while
the agent's heartbeats, a buyer's order delivered with its key, and (the second time) a revocation go through
the other; last, `hq undeploy`. Nothing is torn down per test: the private engine goes at the session's end.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from kitctl.deploy.engine_exec import run_in
from tests.support import swarm_engine
from tests.support.kit_stack import SKU, Stack, card_keys, new_stack, place_order
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

HOST = {"Host": "localhost"}  # the site's name: the proxy answers other names with an empty page
PG_PASSWORD = "hq-" + uuid.uuid4().hex


class Hq:
    """The HQ deployment: its name, network, database (a container on the network, its port on the engine's
    address for the test) and directory."""

    def __init__(self, engine: swarm_engine.SwarmEngine, root: Path) -> None:
        from tests.support.postgres import free_port

        suffix = uuid.uuid4().hex[:8]
        self.engine, self.root = engine, root
        self.name, self.network, self.dir = f"kitctl-hq-{suffix}", f"kitctl-hqnet-{suffix}", root / "hq"
        self.pg_port = free_port()
        self.db_url = f"postgresql://kit:{PG_PASSWORD}@{self.name}-db:5432/kit"  # as the instances reach it
        self.host_db_url = f"postgresql://kit:{PG_PASSWORD}@{engine.addr}:{self.pg_port}/kit"
        self.labels = {"com.kitctl.test": self.name}

    def sql(self, query: str) -> list[str]:
        db = self.engine.client().containers.get(f"{self.name}-db")
        done = run_in(db, ["psql", "-X", "-qtA", "-U", "kit", "-d", "kit", "-c", query], user="postgres")
        assert done.exit_code == 0, done.output.decode()[-400:]
        return [line for line in done.stdout.decode().splitlines() if line.strip()]

    def service(self) -> Any:
        return self.engine.client().services.get(self.name)

    def running(self) -> list[dict[str, Any]]:
        return [t for t in self.service().tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]


def deploy(s: Stack, hq: Hq, *more: str, check: bool = True):
    return s.kitctl("hq", "deploy", "--orchestrator", "swarm", "--replicas", "2", "--hq-dir", str(hq.dir),
                    "--database-url", hq.db_url, "--name", hq.name, "--network", hq.network,
                    "--setting", "heartbeat_interval_seconds=3", "--docker-host", hq.engine.socket, *more,
                    site=False, check=check)


@pytest.fixture(scope="module")
def engine(swarm_manager: swarm_engine.SwarmEngine) -> swarm_engine.SwarmEngine:
    return swarm_manager


@pytest.fixture(scope="module")
def stack(engine: swarm_engine.SwarmEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Hq]]:
    """The HQ's database and keys (its risk rules open)."""
    from hq.risk import RuleSource, parse_rules
    from kitcore import __version__
    from kitcore.licence.keys import HQKeyStore
    from tests.agent.helpers import OPEN_RULES

    root = tmp_path_factory.mktemp("swarmhq")
    s = new_stack(root, "shq", engine.client())
    hq = Hq(engine, root)
    client = engine.client()
    client.networks.create(hq.network, driver="overlay", attachable=True, scope="swarm", labels=hq.labels)
    (root / "pg").mkdir()
    (root / "pg" / "db_password").write_text(PG_PASSWORD)
    client.containers.run(f"kitctl/db:{__version__}", name=f"{hq.name}-db", detach=True, network=hq.network,
                          environment={"POSTGRES_PASSWORD_FILE": "/pg/db_password"},
                          volumes={str(root / "pg"): {"bind": "/pg", "mode": "ro"}},
                          ports={"5432/tcp": (engine.addr, hq.pg_port)}, labels=hq.labels)
    HQKeyStore(hq.dir).init()
    RuleSource(hq.dir / "risk-rules.json").save(parse_rules(OPEN_RULES))
    eventually(lambda: hq.sql("SELECT 1") == ["1"], 60, 0.5, what="HQ's database answering")
    yield s, hq  # nothing removed: the private engine, and all on it, goes at the session's end (the last test
    # here shows `hq undeploy`; test_swarm shows the site's `down`)


def test_hq_runs_two_instances_migrated_once_by_a_job(stack: tuple[Stack, Hq]) -> None:
    s, hq = stack
    started = time.monotonic()
    done = deploy(s, hq, check=False)
    took = time.monotonic() - started
    logs = hq.engine.docker("service", "logs", "--tail", "20", hq.name, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr, logs.stdout[-2000:], logs.stderr[-2000:])
    assert "migrating the database (one task)" in done.stdout and "2 instances healthy" in done.stdout, done.stdout
    print(f"\nhq deploy (migration job + 2 instances healthy): {took:.1f}s")
    assert len(hq.running()) == 2
    env = hq.service().attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "KIT_HQ_MIGRATE=false" in env and not any("DATABASE_URL" in e or PG_PASSWORD in e for e in env)
    assert not hq.engine.client().services.list(filters={"name": f"{hq.name}_migrate"})  # the job is gone
    assert len(hq.sql("SELECT version_num FROM alembic_version")) == 1  # migrated before anything opened it here
    version = hq.service().attrs["Version"]["Index"]
    again = deploy(s, hq)
    assert "nothing to do" in again.stdout and "migrating" not in again.stdout, again.stdout
    assert hq.service().attrs["Version"]["Index"] == version


def test_a_swarm_site_on_hq_sells(stack: tuple[Stack, Hq], engine: swarm_engine.SwarmEngine) -> None:
    from demo import catalog
    from hq import catalog_csv, inventory, licences
    from hq.service import HQ
    from hq.settings import HQSettings

    s, hq = stack
    settings = HQSettings(dir=hq.dir, database_url=hq.host_db_url, public_url=f"http://{hq.name}:8600",
                          registry_url=None)
    service = HQ.open(settings, migrate=False)
    try:
        (s.root / "hq-keys.json").write_text(__import__("json").dumps(service.keys.jwks()))
        catalog_csv.import_items(service, "test", catalog.items_csv())
        inventory.import_csv(service, "test", catalog.card_keys_csv(per_sku=200))
        token = str(licences.issue(service, "test", s.site_id, "basic", ["game", "phone"], 30)["token"])
    finally:
        service.close()
    (s.root / "licence.jwt").write_text(token)
    s.kitctl("up", "--orchestrator", "swarm", "--docker-host", engine.socket, "--licence", f"@{s.root / 'licence.jwt'}",
             "--hq-keys", str(s.root / "hq-keys.json"), "--name", "总部双实例", "--domain", "localhost", "--tls", "off",
             "--http-port", str(s.http_port), "--metrics-port", str(s.metrics_port), "--hq-network", hq.network,
             "--replicas", "2")
    eventually(lambda: httpx.get(f"{shop(engine, s)}/p/{SKU}", headers=HOST, timeout=3).status_code == 200, 120, 0.5,
               what="catalog synced from HQ")
    delivered(engine, s)


def shop(engine: swarm_engine.SwarmEngine, s: Stack) -> str:
    return f"http://{engine.addr}:{s.http_port}"


def delivered(engine: swarm_engine.SwarmEngine, s: Stack, within: float = 90) -> str:
    """A buyer's order, delivered with its card key; its id."""
    order, _ = place_order(shop(engine, s), headers=HOST)
    eventually(lambda: bool(card_keys(shop(engine, s), order, "order-pw-1", headers=HOST)), within, 0.5,
               what=f"order {order} delivered with its key")
    return order


class OrderStream:
    """Buyers placing one order a second through the proxy until stopped: the ids the shop accepted."""

    def __init__(self, engine: swarm_engine.SwarmEngine, s: Stack) -> None:
        self.base, self.accepted, self.failed = shop(engine, s), [], 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.accepted.append(place_order(self.base, headers=HOST)[0])
            except (httpx.HTTPError, AssertionError, AttributeError):
                self.failed += 1  # refused or reset while the proxy was replaced: the buyer sees an error
            self._stop.wait(1.0)

    def __enter__(self) -> "OrderStream":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(timeout=30)


def test_no_order_is_lost_or_duplicated_across_a_colour_change_and_a_killed_task(
        stack: tuple[Stack, Hq], engine: swarm_engine.SwarmEngine) -> None:
    s, hq = stack
    with OrderStream(engine, s) as stream:
        s.kitctl("up", "--docker-host", engine.socket, "--primary-color", "#00aa55")  # the recorded orchestrator
        victim = next(t for t in engine.client().services.get(f"kit-{s.site_id}_storefront").tasks(
            filters={"desired-state": "running"}) if t["Status"]["State"] == "running")
        engine.client().containers.get(victim["Status"]["ContainerStatus"]["ContainerID"]).kill()
        eventually(lambda: len([t for t in engine.client().services.get(f"kit-{s.site_id}_storefront").tasks(
            filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]) == 2, 120, 0.5,
            what="the killed storefront task replaced")
        time.sleep(3)
    assert len(stream.accepted) >= 20, (stream.accepted, stream.failed)
    site_ids = lambda: s.psql("SELECT id FROM orders")  # noqa: E731
    hq_ids = lambda: hq.sql(f"SELECT order_id FROM orders WHERE site_id = '{s.site_id}'")  # noqa: E731
    eventually(lambda: set(stream.accepted) <= set(hq_ids()), 120, 1, what="every accepted order at HQ")
    eventually(lambda: sorted(hq_ids()) == sorted(site_ids()), 60, 1, what="HQ's orders = the site's")
    at_site, at_hq = site_ids(), hq_ids()
    print(f"\norders across the colour change and the killed task: {len(stream.accepted)} accepted, "
          f"{stream.failed} refused while the proxy restarted; site {len(at_site)}, HQ {len(at_hq)}")
    assert len(at_site) == len(set(at_site)) and len(at_hq) == len(set(at_hq))  # none twice
    assert sorted(at_site) == sorted(at_hq)  # none lost on either side


def stop_one(hq: Hq, task: dict[str, Any]) -> None:
    """Stop one instance as an operator would (`docker stop`: SIGTERM, a clean exit), the service left at 2
    replicas: restarting on failure only, Swarm leaves it down and the other serves alone."""
    hq.engine.client().containers.get(task["Status"]["ContainerStatus"]["ContainerID"]).stop(timeout=10)
    eventually(lambda: len(left := hq.running()) == 1 and left[0]["ID"] != task["ID"], 30, 0.3,
               what="only the other instance running")
    time.sleep(3)  # past Swarm's restart delay (2 s): a replacement would be starting by now
    stopped = next(t for t in hq.service().tasks() if t["ID"] == task["ID"])
    assert stopped["Status"]["State"] == "complete", stopped["Status"]
    assert len(hq.service().tasks(filters={"desired-state": "running"})) == 1, "Swarm started a replacement"
    assert hq.service().attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 2


def both_running(hq: Hq) -> None:
    """The stopped instance back: every task replaced, one at a time, each healthy before the next."""
    if len(hq.running()) < 2:
        done = hq.engine.docker("service", "update", "--force", "--quiet", hq.name, check=False)
        assert done.returncode == 0, done.stderr[-1000:]
    eventually(lambda: len(hq.running()) == 2, 60, 0.5, what="2 HQ instances running")


def heartbeat_after(hq: Hq, s: Stack, since: str) -> None:
    eventually(lambda: hq.sql(f"SELECT last_heartbeat_at > '{since}' FROM sites WHERE id = '{s.site_id}'") == ["t"],
               60, 0.5, what="a heartbeat at HQ through the remaining instance")


@pytest.mark.parametrize("which", ["first", "second"])
def test_heartbeats_orders_and_a_revocation_work_with_either_instance_stopped(
        stack: tuple[Stack, Hq], engine: swarm_engine.SwarmEngine, which: str) -> None:
    s, hq = stack
    both_running(hq)
    first, second = sorted(hq.running(), key=lambda t: t["CreatedAt"])
    victim = first if which == "first" else second
    started = time.monotonic()
    stop_one(hq, victim)
    since = hq.sql("SELECT now()")[0]
    heartbeat_after(hq, s, since)
    order = delivered(engine, s)
    line = f"\nHQ instance {which} stopped: heartbeat and order {order} delivered through the other"
    if which == "second":
        s.kitctl("hq", "licence", "revoke", s.site_id, "--reason", "swarm check: terms", "--hq-dir", str(hq.dir),
                 "--database-url", hq.host_db_url, site=False)
        eventually(lambda: "swarm check: terms" in httpx.get(f"{shop(engine, s)}/", headers=HOST, timeout=5).text,
                   60, 0.5, what="the shop showing the revocation")
        eventually(lambda: hq.sql(f"SELECT applied_seq = command_seq FROM sites WHERE id = '{s.site_id}'") == ["t"],
                   60, 0.5, what="the agent acknowledging the revocation")
        line += "; the revocation applied and acknowledged"
    assert [t["ID"] for t in hq.running()] != [victim["ID"]] and len(hq.running()) == 1  # all through the other
    print(f"{line} ({time.monotonic() - started:.1f}s)")


def test_undeploy_removes_the_services_and_secrets_and_leaves_the_database(stack: tuple[Stack, Hq]) -> None:
    s, hq = stack
    started = time.monotonic()
    done = s.kitctl("hq", "undeploy", "--orchestrator", "swarm", "--name", hq.name, "--docker-host", hq.engine.socket,
                    site=False)
    print(f"\nhq undeploy: {time.monotonic() - started:.1f}s")
    assert f"removed swarm service {hq.name}" in done.stdout and "removed swarm secret" in done.stdout, done.stdout
    client = hq.engine.client()
    assert not [x for x in client.services.list() if x.name.startswith(hq.name)]
    assert not client.secrets.list(filters={"label": f"com.docker.stack.namespace={hq.name}"})
    assert hq.sql(f"SELECT count(*) FROM sites WHERE id = '{s.site_id}'") == ["1"]  # the database left alone
    again = s.kitctl("hq", "undeploy", "--orchestrator", "swarm", "--name", hq.name, "--docker-host", hq.engine.socket,
                     site=False)
    assert f"nothing to remove: no HQ deployment {hq.name}" in again.stdout
