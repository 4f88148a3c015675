"""Benchmark the agent's question about its waiting orders: one `POST /v1/order-status` against one GET per order.

    python bench/order_status_bench.py                 # SQLite, 200 orders awaiting payment, 5 rounds
    python bench/order_status_bench.py --orders 50 --rounds 10

A served HQ (uvicorn, one worker, in this process) with epay enabled against
the epay sandbox; `--orders` orders approved and awaiting payment. Each round
asks about all of them once with the batch endpoint and once order by order,
as the agent did before it (every `KIT_AGENT_PAYMENT_POLL`, 2 s). Printed: the
median time of each way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=200, choices=range(1, 201), metavar="1..200")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import httpx

    from hq.payments import config
    from hq.payments.sandbox_epay import EpaySandbox, serving
    from hq.testing import running_hq
    from bench.payments_bench import OPEN_RULES

    with serving(EpaySandbox()) as box, tempfile.TemporaryDirectory(prefix="status-bench-") as tmp, \
            running_hq(Path(tmp), payment_check_seconds=3600, site_rate_per_second=10**6,
                       site_rate_burst=10**6) as hq:
        hq.set_rules(OPEN_RULES)
        hq.seed_item("card-b", price_cents=100)
        hq.seed_card_keys("card-b", args.orders)
        pid, key = box.add_merchant()
        config.configure(hq.service, "bench", "epay", {"api_url": box.url, "pid": pid, "key": key})
        token = hq.issue_licence("bench-site")
        headers = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(timeout=30, headers=headers)
        ids = [f"b{i}" for i in range(args.orders)]
        orders = [{"order_id": i, "sku": "card-b", "quantity": 1, "unit_price_cents": 100, "currency": "CNY",
                   "buyer": {"contact": f"{i}@example.cn"}, "created_at": "2026-12-06T00:00:00Z"} for i in ids]
        resp = client.post(f"{hq.url}/v1/orders", json={"orders": orders}, headers={"Idempotency-Key": "bench"})
        resp.raise_for_status()
        assert all(r["status"] == "pending_payment" for r in resp.json()["results"])
        batch, one_by_one = [], []
        for _ in range(args.rounds):
            began = time.perf_counter()
            answer = client.post(f"{hq.url}/v1/order-status", json={"order_ids": ids})
            batch.append(time.perf_counter() - began)
            assert len(answer.json()["results"]) == args.orders
            began = time.perf_counter()
            for order_id in ids:
                client.get(f"{hq.url}/v1/orders/{order_id}").raise_for_status()
            one_by_one.append(time.perf_counter() - began)
        print(f"[{hq.service.engine.dialect.name}] {args.orders} orders awaiting payment, {args.rounds} rounds: "
              f"one POST /v1/order-status {statistics.median(batch) * 1000:.0f} ms (median); "
              f"{args.orders} GET /v1/orders/{{id}} {statistics.median(one_by_one) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
