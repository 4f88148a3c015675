"""Order forwarding benchmark: agent → real HQ over loopback, batches of 200, PostgreSQL site DB.

Prints: drain throughput of a backlog, and order-to-decision latency (p50/p99) under a steady
stream written while the agent runs (created_at at the storefront → decided_at by the agent).
Run: python bench/agent_forward.py [--backlog 5000] [--rate 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import psutil

from agent_common import bench_world, cpu_seconds, p, postgres_cpu


def hq_only_rate(hq, site, batches: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Orders/s HQ's POST /v1/orders sustains by itself (same payloads the agent sends)."""
    import uuid
    from datetime import datetime, timezone

    import httpx

    token = site.licence_file.read_text().strip()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    t = time.perf_counter()
    with httpx.Client(base_url=hq.url, timeout=120) as c:
        for _ in range(batches):
            body = {"orders": [{"order_id": f"direct{uuid.uuid4().hex[:16]}", "sku": "bench-topup", "quantity": 1,
                                "unit_price_cents": 1000, "currency": "CNY",
                                "buyer": {"account": None, "contact": "bench@example.cn", "ip": "127.0.0.1",
                                          "region": "CN"}, "created_at": now} for _ in range(200)]}
            r = c.post("/v1/orders", json=body, headers={"Authorization": f"Bearer {token}",
                                                          "Idempotency-Key": uuid.uuid4().hex})
            r.raise_for_status()
    return batches * 200 / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--rate", type=int, default=500, help="orders per second in the steady phase")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from sitedb.models import Order
    from tests.agent.helpers import AgentProcess, migrated_engine, order_counts, wait_until, write_orders

    with bench_world() as (hq, site, site_url):
        hq.seed_item("bench-topup", category="game", price_cents=1000, stock_kind="direct_topup")
        engine = migrated_engine(site_url)
        hq_alone = hq_only_rate(hq, site)
        print(f"HQ alone       : {hq_alone:,.0f} orders/s (direct POSTs of 200, no agent: the ceiling below)")
        write_orders(engine, args.backlog, "bench-topup", prefix="b")
        agent = AgentProcess(site, Path(site.path) / "agent.log", forward_idle=0.05, log_level="WARNING",
                             http_timeout=60)
        t = time.perf_counter()
        agent.start(wait_ready=False)
        wait_until(agent.ready, 60, what="agent ready")
        ready_at = time.perf_counter()
        me, agent_proc, pg_cpu = psutil.Process(), psutil.Process(agent.proc.pid), postgres_cpu(engine)
        cpu0 = (cpu_seconds(agent_proc), cpu_seconds(me), pg_cpu())
        load0 = os.getloadavg()[0]
        wait_until(lambda: order_counts(engine).get("pending", 0) == 0, 600, interval=0.05, what="backlog drained")
        drained = time.perf_counter() - ready_at
        agent_s, hq_s, pg_s = (b - a for a, b in zip(cpu0, (cpu_seconds(agent_proc), cpu_seconds(me), pg_cpu())))
        print(f"backlog        : {args.backlog} orders forwarded and decided in {drained:.2f}s "
              f"({args.backlog / drained:,.0f} orders/s, batches of 200) [agent start {ready_at - t:.1f}s excluded]")
        per = 1000 / args.backlog
        print(f"CPU per order  : agent {agent_s * per:.2f} ms, HQ (this process) {hq_s * per:.2f} ms, "
              f"PostgreSQL (both databases) {pg_s * per:.2f} ms; load average {load0:.1f} → {os.getloadavg()[0]:.1f}")
        # steady phase: the storefront writes `rate` orders/s in checkouts of 10
        per_tick, tick = 10, 10 / args.rate
        ids: list[str] = []
        start = time.perf_counter()
        next_tick = start
        while time.perf_counter() - start < args.seconds:
            ids += write_orders(engine, per_tick, "bench-topup", prefix="s")
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.perf_counter()))
        written_rate = len(ids) / (time.perf_counter() - start)
        wait_until(lambda: order_counts(engine).get("pending", 0) == 0, 600, interval=0.05, what="stream drained")
        with Session(engine) as s:
            rows = s.execute(select(Order.created_at, Order.decided_at).where(Order.id.in_(ids))).all()
        lat = [(d - c).total_seconds() * 1000 for c, d in rows]
        print(f"steady stream  : {len(ids)} orders at {written_rate:,.0f}/s; order→decision "
              f"p50 {p(lat, 50):.0f} ms, p99 {p(lat, 99):.0f} ms, max {max(lat):.0f} ms")
        assert agent.terminate() == 0
        engine.dispose()


if __name__ == "__main__":
    main()
