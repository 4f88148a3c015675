"""Benchmark HQ's payment notifications: how many verified notifications HQ applies per second, and how long one takes.

    python bench/payments_bench.py                        # PostgreSQL (throwaway cluster), 400 orders
    python bench/payments_bench.py --db sqlite --orders 200
    python bench/payments_bench.py --database-url postgresql://...

A served HQ (uvicorn, one worker, in this process) with epay enabled against
the epay sandbox; `--orders` orders are approved in batches of 200
(pending_payment, keys reserved), paid at the sandbox, and their signed
notifications sent over HTTP by `--concurrency` threads, each notification
`--replays` times (the first delivers: keys sold, order delivered, ledger
posted; the rest are replays). Printed: notifications per second, and the
latency of one notification (HQ's answer `success` comes after the commit
that delivers the order), p50 and p99. The time until the buyer sees the key
adds the agent's `payment_poll` (2 s by default) and the order page's 2 s poll.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPEN_RULES = {"velocity": [], "site_daily": {"max_orders": 10**6, "max_amount_cents": 10**12},
              "new_site": {"days": 0}, "foreign_region_action": None,
              "limits": {"review_amount_cents": 10**11, "reject_amount_cents": 10**12,
                         "review_quantity": 10000, "reject_quantity": 10000}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--database-url")
    ap.add_argument("--orders", type=int, default=400)
    ap.add_argument("--replays", type=int, default=2, help="times each notification is sent")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()

    import httpx

    from hq.payments import config
    from hq.payments.sandbox_epay import EpaySandbox, serving
    from hq.testing import running_hq

    with ExitStack() as stack:
        url = args.database_url
        if url is None and args.db == "postgres":
            from tests.hq.pg import fresh_database, plain
            from tests.support.postgres import postgres_cluster

            url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
        box = stack.enter_context(serving(EpaySandbox(drop_notifications=True)))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pay-bench-")))
        hq = stack.enter_context(running_hq(tmp, database_url=url, payment_check_seconds=3600,
                                            site_rate_per_second=10**6, site_rate_burst=10**6))
        hq.seed_item("card-b", price_cents=9000)
        hq.seed_card_keys("card-b", args.orders)
        hq.set_rules(OPEN_RULES)
        pid, key = box.add_merchant()
        config.configure(hq.service, "bench", "epay", {"api_url": box.url, "pid": pid, "key": key})
        token = hq.issue_licence("bench-site")
        client = httpx.Client(timeout=30)
        results: list[dict[str, Any]] = []
        for start in range(0, args.orders, 200):
            batch = [{"order_id": f"b{i}", "sku": "card-b", "quantity": 1, "unit_price_cents": 9500, "currency": "CNY",
                      "buyer": {"contact": f"b{i}@example.cn"}, "created_at": "2026-12-06T00:00:00Z"}
                     for i in range(start, min(start + 200, args.orders))]
            resp = client.post(f"{hq.url}/v1/orders", json={"orders": batch},
                               headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{start}"})
            resp.raise_for_status()
            results += resp.json()["results"]
        assert all(r["status"] == "pending_payment" for r in results)
        notes = []
        for r in results:
            client.get(r["payment"]["pay_url"]).raise_for_status()  # the trade starts at the sandbox
        for trade in list(box.trades.values()):
            box.pay(trade.trade_no)
            notes.append(box.notification(trade))
        sends = [n for n in notes for _ in range(args.replays)]

        def send(params: dict[str, str]) -> float:
            began = time.perf_counter()
            answer = client.get(f"{hq.url}/v1/payments/epay/notify", params=params)
            assert answer.text == "success", answer.text
            return time.perf_counter() - began

        began = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            latencies = list(pool.map(send, sends))
        elapsed = time.perf_counter() - began
        from sqlalchemy import func, select

        from hq.models import CardKey
        with hq.service.read() as conn:
            sold = conn.execute(select(func.count()).select_from(CardKey).where(CardKey.status == "sold")).scalar()
        assert sold == args.orders, sold
        print(f"[{hq.service.engine.dialect.name}] {len(sends)} notifications ({args.orders} orders × {args.replays}), "
              f"{args.concurrency} senders: {len(sends) / elapsed:.0f}/s; latency p50 "
              f"{statistics.median(latencies) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms; "
              f"all {args.orders} delivered once")


if __name__ == "__main__":
    main()
