"""Single-order decisions at HQ as the orders table grows: 10k, 100k and 1M orders, one run.

    python bench/hq_single_bench.py                        # PostgreSQL (throwaway cluster), 2 workers
    python bench/hq_single_bench.py --sizes 10000,100000 --explain

Seeds HQ like bench/hq_wrk.py (2,000 SKUs, 50,000 card keys, 100 sites), then
for each size fills `orders` up to it (decided orders received in the last
hour, spread over the sites: all of them in today's counts and the velocity
windows) and drives `POST /v1/orders` with one order a request through wrk
for a fixed time. Prints decisions/s, p50/p99, HQ and PostgreSQL CPU per
decision and the load; then the slope: how rate and p99 change per tenfold
growth of the table (flat is 1.00×). `--explain` also prints, per size, each
statement one order runs with its EXPLAIN (ANALYZE) time and the rows it
read from `orders`.

The peers, in the same run, on the same database: an HQ with
`KIT_HQ_ORDER_GROUPS=false` ("alone": each request decided on its own) and
one with `KIT_HQ_FAST_PATHS=false` ("routed": every order request through
FastAPI's route), a phase of each at every size, in turn; printed with the
ratios and the mean number of requests HQ decided together
(`kithq_order_group_requests`). The orders
come from 100 sites, one after another; `--sites 1` sends them all from
one, as a reseller's API client does.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hq_bench import seed  # noqa: E402
from hq_wrk import postgres_pids, start_server, wrk_phase  # noqa: E402

SITES = 100


def explain(hq_dir: Path, url: str, n: int) -> None:
    from hq.service import HQ
    from hq.settings import HQSettings
    from tests.hq.plans import single_order_plans

    service = HQ.open(HQSettings(dir=hq_dir, database_url=url, registry_url=None), migrate=False)
    try:
        _, plans = single_order_plans(service, "bench-1", n)
    finally:
        service.close()
    for e in plans:
        print(f"      {e.plan['Execution Time']:7.3f} ms  orders rows {e.rows_read('orders'):6d}  "
              f"seq scans {sorted(e.seq_scans()) or '-'}  {' '.join(e.sql.split())[:90]}")


def slope(first: float, last: float, decades: float) -> float:
    """The factor per tenfold growth of the table (nan where a figure was not measurable)."""
    return (last / first) ** (1 / decades) if first > 0 and last > 0 and decades > 0 else float("nan")


def group_sums(base: str, hq_dir: Path) -> tuple[float, float]:
    """(requests, groups) HQ has decided through hq.order_groups so far, from its /metrics."""
    import httpx

    from tests.monitoring.helpers import sample

    text = httpx.get(f"{base}/metrics", timeout=10,
                     headers={"Authorization": f"Bearer {(hq_dir / 'metrics-token').read_text().strip()}"}).text
    return (sample(text, "kithq_order_group_requests_sum") or 0.0, sample(text, "kithq_order_group_requests_count") or 0.0)


def _cpu(r: dict[str, float]) -> float:
    return r["cpu_ms_per_unit"] + (r["db_ms_per_unit"] if not math.isnan(r["db_ms_per_unit"]) else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=8, help="per size (at most 10)")
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--sites", type=int, default=SITES, help=f"the orders come from this many sites (1..{SITES})")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    from tests.hq.pg import fresh_database, plain
    from tests.hq.plans import fill_orders
    from tests.support.postgres import postgres_cluster

    with ExitStack() as stack:
        url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
        hq_dir = Path(tempfile.mkdtemp(prefix="hq-single-"))
        stack.callback(shutil.rmtree, hq_dir, True)
        tokens = seed(hq_dir, url, SITES, items=2000, keys=50_000)
        (hq_dir / "tokens.txt").write_text("\n".join(tokens[:max(1, min(args.sites, SITES))]) + "\n")
        servers = {"grouped": start_server(hq_dir, url, args.workers, stack),
                   "alone": start_server(hq_dir, url, args.workers, stack, {"KIT_HQ_ORDER_GROUPS": "false"}),
                   "routed": start_server(hq_dir, url, args.workers, stack, {"KIT_HQ_FAST_PATHS": "false"})}
        env = {**os.environ, "HQ_BENCH_TOKENS": str(hq_dir / "tokens.txt")}
        db_pids = postgres_pids(url)
        print(f"HQ single-order decisions (PostgreSQL, {args.workers} workers, {args.connections} connections, "
              f"{min(args.seconds, 10)} s a size and server, orders from {min(args.sites, SITES)} site(s), "
              f"{os.cpu_count()} CPUs shared with wrk and PostgreSQL)", flush=True)
        rows, results = 0, []
        for size in sizes:
            started = time.monotonic()
            fill_orders(url, [f"bench-{i}" for i in range(SITES)], rows, size - rows)
            print(f"  {size:>9,} orders (filled in {time.monotonic() - started:.0f} s)", flush=True)
            rows = size
            if args.explain:
                explain(hq_dir, url, size)
            phase = {}
            for name, (base, pid) in servers.items():
                groups_before = group_sums(base, hq_dir)
                r = wrk_phase(base, "orders", env, min(args.seconds, 10), args.connections, 1, pid, 1, None, db_pids)
                if r["db_cpu_s"] < 0:  # a PostgreSQL process that ended mid-phase (autovacuum) took its CPU time along
                    r["db_ms_per_unit"] = float("nan")
                requests, groups = (a - b for a, b in zip(group_sums(base, hq_dir), groups_before))
                r["together"] = requests / groups if groups else float("nan")
                rows += int(r["requests"])
                phase[name] = r
                print(f"    {name:>7}: {r['per_second']:6.0f}/s  non-2xx {int(r['status_errors'])}  "
                      f"p50 {r['p50_us'] / 1000:6.1f} ms  p99 {r['p99_us'] / 1000:6.1f} ms  "
                      f"HQ CPU {r['cpu_ms_per_unit']:5.2f} ms each  PostgreSQL CPU {r['db_ms_per_unit']:5.2f} ms each  "
                      f"requests a group {r['together']:4.1f}  load {r['load_before']:.1f}->{r['load_after']:.1f}",
                      flush=True)
            grouped = phase["grouped"]
            for peer in ("alone", "routed"):
                print(f"    grouped / {peer}: rate {grouped['per_second'] / phase[peer]['per_second']:.2f}×, "
                      f"p99 {grouped['p99_us'] / phase[peer]['p99_us']:.2f}×, "
                      f"HQ+PostgreSQL CPU {_cpu(grouped) / _cpu(phase[peer]):.2f}×", flush=True)
            results.append((size, grouped))
        (first_size, first), (last_size, last) = results[0], results[-1]
        decades = math.log10(last_size / first_size)
        print(f"  slope per tenfold table: rate {slope(first['per_second'], last['per_second'], decades):.2f}×, "
              f"p99 {slope(first['p99_us'], last['p99_us'], decades):.2f}×, "
              f"PostgreSQL CPU {slope(first['db_ms_per_unit'], last['db_ms_per_unit'], decades):.2f}× "
              f"(goal: ≥ 1,000/s and p99 ≤ 20 ms at every size)")


if __name__ == "__main__":
    main()
