"""Benchmark paid checkouts across the processes: buyers check out at the storefront, HQ opens a payment for each,
they pay at the epay sandbox, and the card key shows on their order page (tests/agent/paid_stack.py: storefront and
agent as real processes, HQ served with epay on SQLite, the sandbox in this process).

    python bench/paid_checkouts_bench.py                  # 200 orders, 8 buyer threads
    python bench/paid_checkouts_bench.py --orders 400 --threads 16

Printed: checkouts per second at the storefront; seconds from the last checkout until every order page shows
its pay link; and per order, the time from the payment at the sandbox until its order page says `delivered`
(p50, p99, max: the sandbox's notification, HQ's delivery, the agent's poll of `payment_poll` seconds, the
page's status, read by threads of their own every 0.1 s plus a round over the waiting pages), while all of them
are paid at once by the buyer threads. Checks as it goes: each order delivered once, no key twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--payment-poll", default="2.0", help="the agent's KIT_PAYMENT_POLL (its default: 2 s)")
    args = ap.parse_args()

    from tests.agent.paid_stack import Buyer, paid_stack, place_until_payable

    with tempfile.TemporaryDirectory(prefix="paid-bench-") as tmp, \
            paid_stack(Path(tmp), args.orders, payment_poll=args.payment_poll) as stack, \
            ThreadPoolExecutor(args.threads) as pool, ThreadPoolExecutor(args.threads) as watch:
        buyers = [Buyer(stack.base, n) for n in range(args.orders)]
        load0 = os.getloadavg()[0]
        began, placed, payable = place_until_payable(pool, buyers)
        seen: dict[int, float] = {}
        paying = [pool.submit(b.pay) for b in buyers]  # the buyers pay on one pool, their pages are watched on another
        while len(seen) < len(buyers):
            if time.monotonic() - payable > 600:
                raise SystemExit(f"{len(buyers) - len(seen)} paid orders not delivered in 600 s")
            waiting = [b for b in buyers if b.n not in seen and b.paid_at]
            for b, status in zip(waiting, watch.map(Buyer.status, waiting)):
                if status == "delivered":
                    seen[b.n] = time.monotonic()
            time.sleep(0.1)
        trades = [f.result() for f in paying]
        latencies = [seen[b.n] - b.paid_at for b in buyers]
        after_notice = [seen[b.n] - stack.box.trades[t].notified_at for b, t in zip(buyers, trades)]
        shown = {s for b in buyers for s in b.secrets()}
        assert len(shown) == args.orders and len(set(trades)) == args.orders, "a key twice, or an order without one"
        assert {stack.box.trades[t].notified for t in trades} == {1}
    print(f"{args.orders} paid checkouts, {args.threads} buyer threads, agent payment_poll {args.payment_poll} s: "
          f"{args.orders / (placed - began):.1f} checkouts/s; every pay link shown {payable - placed:.1f} s after the "
          f"last checkout; payment → order page 'delivered' p50 {percentile(latencies, 0.5):.2f} s, "
          f"p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s; notification sent → page 'delivered' "
          f"p50 {percentile(after_notice, 0.5):.2f} s, p99 {percentile(after_notice, 0.99):.2f} s; load "
          f"{load0:.1f} → {os.getloadavg()[0]:.1f}; all {args.orders} delivered once, "
          f"{len(shown)} distinct keys")


if __name__ == "__main__":
    main()
