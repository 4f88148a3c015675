"""HQ heartbeats/s with 1 and with 2 instances on one PostgreSQL (issue 22: HQ scaled out).

Each instance is its own `python -m hq` process (uvicorn, `--workers` each, 1 by default), as a Swarm task
would run it, sharing nothing but the database (a throwaway cluster, seeded like bench/hq_wrk.py). The
instances are plain processes on this machine, not Swarm tasks: the figure is HQ's, and a Swarm would add
only its DNS round robin in front. Phase 1: wrk against one instance. Phase 2: a second instance started on
the same database, one wrk against each at once (half the connections each), their rates added.

Run: python bench/hq_instances_bench.py [--seconds 8] [--workers 1] [--connections 16]   (needs wrk)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hq_bench import seed  # noqa: E402
from hq_wrk import postgres_pids, start_server, wrk_phase  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers per instance")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--sites", type=int, default=100)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    from tests.hq.pg import fresh_database, plain
    from tests.support.postgres import postgres_cluster

    with ExitStack() as stack:
        url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
        hq_dir = Path(tempfile.mkdtemp(prefix="hq-instances-"))
        stack.callback(shutil.rmtree, hq_dir, True)
        tokens = seed(hq_dir, url, args.sites, items=200, keys=2_000)
        (hq_dir / "tokens.txt").write_text("\n".join(tokens) + "\n")
        env = {**os.environ, "HQ_BENCH_TOKENS": str(hq_dir / "tokens.txt")}
        db = postgres_pids(url)
        print(f"HQ heartbeats, instances of {args.workers} worker(s) each on one PostgreSQL, {args.connections} "
              f"connections in all, {args.seconds}s a phase, {os.cpu_count()} CPUs shared with wrk and PostgreSQL")
        first, pid1 = start_server(hq_dir, url, args.workers, stack)
        one = wrk_phase(first, "heartbeat", env, args.seconds, args.connections, 1, pid1, db_pids=db)
        print(f"  1 instance   {one['per_second']:7.0f}/s  non-2xx {int(one['status_errors'])}  "
              f"p99 {one['p99_us'] / 1000:6.1f} ms  load {one['load_before']:.1f}->{one['load_after']:.1f}", flush=True)
        second, pid2 = start_server(hq_dir, url, args.workers, stack)
        half = max(1, args.connections // 2)
        with ThreadPoolExecutor(2) as pool:
            runs = list(pool.map(lambda target: wrk_phase(target[0], "heartbeat", env, args.seconds, half, 1, target[1]),
                                 [(first, pid1), (second, pid2)]))
        total = sum(r["per_second"] for r in runs)
        parts = " + ".join(f"{r['per_second']:.0f}" for r in runs)
        print(f"  2 instances  {total:7.0f}/s  ({parts})  non-2xx "
              f"{sum(int(r['status_errors']) for r in runs)}  p99 {max(r['p99_us'] for r in runs) / 1000:6.1f} ms  "
              f"load {runs[0]['load_before']:.1f}->{runs[0]['load_after']:.1f}")
        print(f"  2 / 1 instances: {total / one['per_second']:.2f}x")


if __name__ == "__main__":
    main()
