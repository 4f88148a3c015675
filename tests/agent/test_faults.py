"""Faults the agent must survive, against the real HQ (through a fault-injecting proxy where needed)."""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.hq_client import HQError
from agent.runner import Agent
from sitedb.models import CatalogItem, Order, SiteState
from tests.agent.faultproxy import FaultProxy
from tests.agent.helpers import (AgentProcess, hq_order_counts, make_site_dir, metric_value, migrated_engine,
                                 order_counts,
                                 sqlite_url, wait_until, write_orders)


@pytest.fixture
def proxy(hq):  # type: ignore[no-untyped-def]
    with FaultProxy(hq.url) as p:
        yield p


@pytest.fixture
def proxied_site(tmp_path: Path, hq, proxy, site_db_url, site_id):  # type: ignore[no-untyped-def]
    return make_site_dir(tmp_path, hq, site_db_url, site_id=site_id, hq_url=proxy.url)


@pytest.fixture
def proxied_agent(proxied_site):  # type: ignore[no-untyped-def]
    agent = Agent(proxied_site.settings(metrics_port=0, http_timeout=0.5))
    agent.start()
    yield agent
    agent.server.stop()
    for c in agent.clients:
        c.close()
    agent.engine.dispose()


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode,kind", [("error500", "server"), ("timeout", "timeout"), ("malformed", "malformed"),
                                       ("down", "connect")])
def test_hq_faults_change_nothing_are_counted_and_logged_once(hq, proxy, proxied_agent, proxied_site, mode, kind,
                                                              caplog) -> None:  # type: ignore[no-untyped-def]
    agent = proxied_agent
    sku = f"t-{proxied_site.site_id}"
    hq.seed_item(sku, category="game", price_cents=1000, stock_kind="direct_topup")
    ids = write_orders(agent.engine, 3, sku)
    proxy.hold = 1.0
    proxy.set(mode)
    caplog.set_level(logging.INFO, logger="agent")
    for _ in range(3):
        make_due(agent.engine)  # as if the backoff had passed
        assert agent._unit("orders", agent.forwarder.forward_once) is None
        assert agent._unit("sync", agent.sync.run) is None
        assert agent._unit("heartbeat", agent.heartbeat.beat) is None
    with Session(agent.engine) as s:
        rows = list(s.scalars(select(Order)))
        assert [r.status for r in rows] == ["pending"] * 3  # nothing decided, nothing lost
        assert all(r.attempts == 3 and kind in (r.last_error or "") for r in rows)
        assert s.scalars(select(CatalogItem)).first() is None
    for endpoint in ("orders", "catalog", "heartbeat"):
        assert agent.metrics.hq_errors.labels(endpoint, kind)._value.get() == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "agent"]
    assert len(warnings) == 3, [r.getMessage() for r in warnings]  # one per loop, not one per failure
    # HQ works again: every order decided exactly once
    proxy.set("pass")
    decided = 0
    for _ in range(5):  # on a loaded machine one attempt may outlast the agent's 0.5 s: the next is a replay
        make_due(agent.engine)
        forwarded = agent._unit("orders", agent.forwarder.forward_once)
        decided += forwarded.decided if forwarded is not None else 0
        if order_counts(agent.engine) == {"delivered": 3}:
            break
    assert decided == 3
    for _ in range(5):  # the same allowance as the orders above
        synced = agent._unit("sync", agent.sync.run)
        if synced is not None and synced.complete:
            break
    assert synced is not None and synced.complete
    assert order_counts(agent.engine) == {"delivered": 3}
    assert hq_order_counts(hq, proxied_site.site_id) == (3, 3)
    assert any("works again" in r.getMessage() for r in caplog.records)
    assert set(ids)


def make_due(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s, s.begin():
        for o in s.scalars(select(Order)):
            o.next_attempt_at = o.created_at


def test_hq_down_under_steady_order_stream(hq, proxy, proxied_site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """HQ unreachable for a while as orders keep coming; every order decided exactly once."""
    sku = f"t-{proxied_site.site_id}"
    hq.seed_item(sku, category="game", price_cents=1000, stock_kind="direct_topup")
    agent = AgentProcess(proxied_site, tmp_path / "agent.log").start()
    engine = migrated_engine(proxied_site.db_url)
    written: list[str] = []
    stop = threading.Event()

    def storefront() -> None:
        for _ in range(60):  # 60 checkouts of 3 orders over ~6 s
            if stop.is_set():
                return
            written.extend(write_orders(engine, 3, sku))
            time.sleep(0.1)

    writer = threading.Thread(target=storefront)
    try:
        writer.start()
        time.sleep(1.0)
        proxy.set("down")
        time.sleep(3.0)
        assert agent.ready(), "the agent must stay up while HQ is down"
        proxy.set("pass")
        writer.join(20)
        wait_until(lambda: order_counts(engine).get("pending", 0) == 0 and len(written) == 180, 40,
                   what="all orders decided")
        assert order_counts(engine) == {"delivered": 180}
        assert hq_order_counts(hq, proxied_site.site_id) == (180, 180)
        text = agent.metrics_text()
        assert metric_value(text, "kitagent_orders_forwarded_total", {"decision": "approve"}) == 180
        assert (metric_value(text, "kitagent_hq_errors_total", {"endpoint": "orders", "kind": "connect"}) or 0) >= 1
        outage_logs = [line for line in agent.log_lines() if line.get("msg") == "HQ orders failed: connect"]
        assert len(outage_logs) == 1
        assert agent.terminate() == 0
    finally:
        stop.set()
        writer.join(5)
        if agent.proc and agent.proc.poll() is None:
            agent.kill()
        engine.dispose()


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)  # the durability SQLite must prove
def test_sigkill_repeatedly_while_forwarding(hq, proxy, proxied_site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sku = f"card-{proxied_site.site_id}"
    hq.seed_item(sku, category="game", price_cents=1000)
    hq.seed_card_keys(sku, 200)
    engine = migrated_engine(proxied_site.db_url)
    ids = write_orders(engine, 200, sku)
    proxy.delay = 0.05  # each batch takes a moment: kills land mid-request and mid-write
    rng = random.Random(6)
    agent = AgentProcess(proxied_site, tmp_path / "agent.log", forward_batch=10)
    try:
        kills = 0
        for _ in range(3):
            done = order_counts(engine).get("delivered", 0)
            agent.start(wait_ready=False)
            # kill only once forwarding is under way, at a random moment inside it
            wait_until(lambda: order_counts(engine).get("delivered", 0) > done, 60, interval=0.05,
                       what="forwarding to start")
            time.sleep(rng.uniform(0.0, 0.4))
            agent.kill()
            kills += 1
            if order_counts(engine).get("pending", 0) == 0:
                break
        assert kills >= 2 and order_counts(engine).get("pending", 0) > 0, "kills must land mid-stream"
        agent.start()
        wait_until(lambda: order_counts(engine).get("pending", 0) == 0, 60, what="all orders decided")
        assert order_counts(engine) == {"delivered": 200}
        assert hq_order_counts(hq, proxied_site.site_id) == (200, 200)
        with Session(engine) as s:  # every order got its own card key, none twice
            sealed = [o.delivery_sealed for o in s.scalars(select(Order).where(Order.id.in_(ids)))]
        from sitedb.sealing import open_sealed

        serials = [k["serial"] for blob in sealed for k in open_sealed(proxied_site.site_key, blob)["card_keys"]]
        assert len(serials) == len(set(serials)) == 200
        assert agent.terminate() == 0
    finally:
        if agent.proc and agent.proc.poll() is None:
            agent.kill()
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("site_db_url", ["postgres"], indirect=True)
def test_sigkill_repeatedly_during_sync_pages(hq, proxy, proxied_site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hq import catalog

    prefix = proxied_site.site_id
    for i in range(200):
        hq.seed_item(f"{prefix}-{i:03d}", category="phone", price_cents=1000 + i, stock_kind="direct_topup")
    engine = migrated_engine(proxied_site.db_url)
    proxy.delay = 0.03
    rng = random.Random(7)
    agent = AgentProcess(proxied_site, tmp_path / "agent.log", sync_page_limit=5)
    try:
        def cursor() -> str | None:
            with Session(engine) as s:
                state = s.get(SiteState, 1)
                return state.catalog_cursor if state else None

        for round_ in range(3):
            before = cursor()
            agent.start(wait_ready=False)
            wait_until(lambda: cursor() not in (None, before), 60, interval=0.05, what="a sync page to land")
            time.sleep(rng.uniform(0.0, 0.3))
            agent.kill()
            # HQ keeps changing between kills: updates and deletions (more than one page of work)
            for j in range(12):
                hq.seed_item(f"{prefix}-{round_ * 12 + j:03d}", category="phone", price_cents=5000 + round_,
                             stock_kind="direct_topup")
            catalog.remove(hq.service, "test", f"{prefix}-{100 + round_:03d}")
        agent.start()

        def hq_view() -> dict[str, int]:
            return {i["sku"]: i["price_cents"] for i in catalog.list_items(hq.service)
                    if i["category"] in ("game", "phone")}

        def site_view() -> dict[str, int]:
            with Session(engine) as s:
                return {i.sku: i.hq_price_cents for i in s.scalars(select(CatalogItem))}

        wait_until(lambda: site_view() == hq_view(), 60, what="site catalog equal to HQ's")
        assert f"{prefix}-100" not in site_view() and site_view()[f"{prefix}-000"] == 5000
        assert site_view()[f"{prefix}-030"] == 5002
        assert agent.terminate() == 0
    finally:
        if agent.proc and agent.proc.poll() is None:
            agent.kill()
        engine.dispose()


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_kill_after_hq_decided_before_the_site_saved(hq, proxy, proxied_site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The agent dies exactly when HQ commits its decision (a hook on HQ's write, not a sleep); the
    decision is not in the site database yet. On restart the agent stores HQ's original decisions:
    nothing decided twice, no card key sold twice, the keys at the site are the ones HQ allocated."""
    import os
    import signal

    from sqlalchemy import event

    from hq.models import CardKey, Order as HQOrder
    from sitedb.sealing import open_sealed

    sku = f"card-{proxied_site.site_id}"
    hq.seed_item(sku, category="game", price_cents=1000)
    hq.seed_card_keys(sku, 40)
    engine = migrated_engine(proxied_site.db_url)
    agent = AgentProcess(proxied_site, tmp_path / "agent.log", forward_batch=10)
    hq_engine = hq.service.engine
    kills: list[int] = []

    def saw_insert(conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO ORDERS") and proxied_site.site_id in str(parameters):
            conn.info["kit_decided"] = True

    def on_commit(conn) -> None:  # type: ignore[no-untyped-def]
        if conn.info.pop("kit_decided", False) and agent.proc is not None and agent.proc.poll() is None:
            os.kill(agent.proc.pid, signal.SIGKILL)  # HQ commits right after this: decided, never answered
            kills.append(agent.proc.pid)

    event.listen(hq_engine, "after_cursor_execute", saw_insert)
    event.listen(hq_engine, "commit", on_commit)
    try:
        for round_ in range(3):
            write_orders(engine, 10, sku, prefix=f"k{round_}")
            agent.start(wait_ready=False)
            agent.proc.wait(60)  # type: ignore[union-attr]
            assert len(kills) == round_ + 1, agent.log_tail()
            assert order_counts(engine).get("pending", 0) >= 10, "the kill must land before the site saved"
        event.remove(hq_engine, "commit", on_commit)
        decided_at_hq = hq_order_counts(hq, proxied_site.site_id)
        assert decided_at_hq == (30, 30)  # HQ decided all three batches, the site saved none of them
        agent.start()
        wait_until(lambda: order_counts(engine).get("pending", 0) == 0, 60, what="all orders stored")
        assert order_counts(engine) == {"delivered": 30}
        assert hq_order_counts(hq, proxied_site.site_id) == (30, 30)  # nothing decided twice
        with Session(engine) as s:
            sealed = [o.delivery_sealed for o in s.scalars(select(Order))]
        site_serials = sorted(k["serial"] for blob in sealed for k in open_sealed(proxied_site.site_key, blob)["card_keys"])
        with hq.service.session() as hs:
            hq_serials = sorted(hs.scalars(select(CardKey.serial).join(HQOrder, CardKey.order_pk == HQOrder.id)
                                          .where(HQOrder.site_id == proxied_site.site_id)))
        assert site_serials == hq_serials and len(set(site_serials)) == 30  # HQ's original allocation, once each
        assert agent.terminate() == 0
    finally:
        if event.contains(hq_engine, "commit", on_commit):
            event.remove(hq_engine, "commit", on_commit)
        event.remove(hq_engine, "after_cursor_execute", saw_insert)
        if agent.proc and agent.proc.poll() is None:
            agent.kill()
        engine.dispose()


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_sigterm_while_hq_holds_a_request_exits_0_within_the_stop_budget(hq, proxy, proxied_site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A batch stuck at HQ is handed back (its orders stay pending) rather than outliving `docker stop`'s timeout."""
    sku = f"t-{proxied_site.site_id}"
    hq.seed_item(sku, category="game", price_cents=1000, stock_kind="direct_topup")
    engine = migrated_engine(proxied_site.db_url)
    agent = AgentProcess(proxied_site, tmp_path / "agent.log", http_timeout=25, stop_timeout=2)
    try:
        agent.start()
        proxy.hold = 30.0
        proxy.set("timeout", only="/v1/orders")
        write_orders(engine, 3, sku)
        wait_until(lambda: proxy.faults >= 1, 20, what="a batch held at HQ")
        started = time.monotonic()
        assert agent.terminate(timeout=15) == 0
        assert time.monotonic() - started < 4.5
        assert order_counts(engine) == {"pending": 3}  # handed back: sent again by the next start
        assert any(line.get("msg", "").startswith("stop budget spent") for line in agent.log_lines())
    finally:
        proxy.set("pass")
        if agent.proc and agent.proc.poll() is None:
            agent.kill()
        engine.dispose()
