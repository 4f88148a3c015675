"""Benchmark payment notifications through the containers: HQ's container handling a burst of them, and the time from
a notification to the card key on the buyer's order page, on the stack `kitctl up` deploys (proxy, storefront,
agent, db), HQ in its container and epay's sandbox in its container (tests.support.demo_stack.own_demo, as the
loop e2e runs them; the site rendered with `--checkouts-per-minute`, as all buyers come from one address).

    python bench/paid_checkouts_containers_bench.py                 # 200 orders, 16 threads
    python bench/paid_checkouts_containers_bench.py --orders 400

Buyers check out through the proxy, then each pays at the sandbox's cashier with its "lose the notification"
button, so the sandbox books the payment and tells HQ nothing. Then the benchmark sends every signed
notification itself (epay's MD5 with the merchant key HQ and the sandbox share) to HQ's container, from
`--threads` threads at once, as a gateway does after an outage. Printed, with the machine's load: notifications
HQ's container handled per second (its `success` answers over the burst's wall time), a notification's round
trip p50/p99, and per order the time from its notification leaving until the buyer's order page says
`delivered` (p50/p99/max; the pages watched on threads of their own). Checks: each order delivered once, each
buyer a key of their own. Builds and pushes the run's images like the e2e tests: take the machine's e2e lock.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SKU = "game-bench-10"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stock(demo: Any, count: int) -> None:
    """Open risk rules (one address, many orders), the SKU and `count` keys at HQ, as its operator would."""
    from demo.stack import HQ_UID, _chown_tree, open_hq
    from hq import catalog, inventory
    from hq.risk import parse_rules
    from tests.agent.helpers import OPEN_RULES

    hq = open_hq(demo)
    try:
        hq.rules.save(parse_rules(OPEN_RULES))
        catalog.upsert(hq, "bench", SKU, catalog.ItemSpec(name="点卡 10 元", category="game", face_value_cents=1000,
                                                         price_cents=900, stock_kind="card_key"))
        inventory.import_csv(hq, "bench", "sku,serial,secret\n" + "".join(
            f"{SKU},B{n:05d},bench-{n:05d}-{os.urandom(4).hex()}\n" for n in range(count)))
    finally:
        hq.close()
    _chown_tree(demo.hq_dir, HQ_UID)


def notices(demo: Any, buyers: list[Any], trades: list[str]) -> dict[int, dict[str, str]]:
    """Each buyer's signed notification, as the sandbox would have sent it (its payment, from HQ's books)."""
    import json
    import sqlite3

    from demo.payments import merchant_file
    from hq.payments.sandbox_epay import sandbox_sign

    merchant = json.loads(merchant_file(demo).read_text())
    db = sqlite3.connect(f"file:{demo.hq_dir / 'hq.sqlite3'}?mode=ro", uri=True)
    try:
        rows = {r[0]: (r[1], int(r[2])) for r in db.execute(
            "SELECT o.order_id, p.out_trade_no, p.amount_cents FROM payments p JOIN orders o ON o.id = p.order_pk "
            "WHERE o.sku = ?", (SKU,))}
    finally:
        db.close()
    out = {}
    for buyer, trade_no in zip(buyers, trades):
        out_trade_no, cents = rows[buyer.path.rsplit("/", 1)[1]]
        fields = {"pid": merchant["pid"], "trade_no": trade_no, "out_trade_no": out_trade_no, "type": "alipay",
                  "name": f"{SKU} x1", "money": f"{cents // 100}.{cents % 100:02d}", "trade_status": "TRADE_SUCCESS"}
        out[buyer.n] = {**fields, "sign": sandbox_sign(fields, merchant["key"]), "sign_type": "MD5"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()

    import docker
    import httpx

    from demo.payments import enable_payments
    from tests.agent.paid_stack import Buyer, place_until_payable
    from tests.support.demo_stack import own_demo

    with tempfile.TemporaryDirectory(prefix="paid-containers-") as tmp, \
            own_demo(Path(tmp), "paybench", heartbeat_seconds=2, checkouts_per_minute=100_000) as demo:
        enable_payments(docker.from_env(), demo)
        stock(demo, args.orders + 20)
        shop = httpx.Client(base_url=demo.site_url, verify=False, timeout=15)
        deadline = time.monotonic() + 300
        while (page := shop.get(f"/p/{SKU}")).status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"the SKU did not reach the shop in 300 s: /p/{SKU} answers {page.status_code}, "
                                 f"the home page {'lists' if SKU in shop.get('/').text else 'does not list'} it")
            time.sleep(1)
        buyers = [Buyer(demo.site_url, n, sku=SKU, verify=False) for n in range(args.orders)]
        with ThreadPoolExecutor(args.threads) as pool, ThreadPoolExecutor(args.threads) as watch, \
                httpx.Client(base_url=demo.hq_url, timeout=30, limits=httpx.Limits(max_connections=64)) as hq:
            began, placed, _ = place_until_payable(pool, buyers)
            trades = list(pool.map(lambda b: b.pay("lose_notification"), buyers))
            signed = notices(demo, buyers, trades)
            sent: dict[int, float] = {}
            trips: list[float] = []

            def notify(b: Any) -> float:
                sent[b.n] = time.monotonic()
                answer = hq.get("/v1/payments/epay/notify", params=signed[b.n])
                assert answer.text == "success", answer.text[:200]
                trips.append(time.monotonic() - sent[b.n])
                return time.monotonic()

            load0 = os.getloadavg()[0]
            burst = time.monotonic()
            answered = [pool.submit(notify, b) for b in buyers]
            seen: dict[int, float] = {}
            while len(seen) < len(buyers):
                if time.monotonic() - burst > 600:
                    raise SystemExit(f"{len(buyers) - len(seen)} notified orders not delivered in 600 s")
                waiting = [b for b in buyers if b.n not in seen and b.n in sent]
                for b, status in zip(waiting, watch.map(Buyer.status, waiting)):
                    if status == "delivered":
                        seen[b.n] = time.monotonic()
                time.sleep(0.1)
            handled = max(f.result() for f in answered) - burst
            shown = [s for b in buyers for s in b.secrets()]
        assert len(shown) == len(set(shown)) == args.orders, "a key twice, or an order without one"
        latencies = [seen[b.n] - sent[b.n] for b in buyers]
    print(f"{args.orders} paid orders through the containers, {args.threads} threads, load {load0:.1f} → "
          f"{os.getloadavg()[0]:.1f} (2 cores): {args.orders / (placed - began):.1f} checkouts/s; HQ's container "
          f"handled {args.orders / handled:.1f} notifications/s (round trip p50 {percentile(trips, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(trips, 0.99) * 1000:.0f} ms); notification → order page 'delivered' "
          f"p50 {percentile(latencies, 0.5):.2f} s, p99 {percentile(latencies, 0.99):.2f} s, "
          f"max {max(latencies):.2f} s; all {args.orders} delivered once, {len(shown)} distinct keys")


if __name__ == "__main__":
    main()
