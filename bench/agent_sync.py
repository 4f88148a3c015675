"""Catalog sync benchmark: 100,000 SKUs from the real HQ over loopback HTTP into PostgreSQL.

Prints: full sync time and agent peak RSS, no-op resync time, incremental sync of 1,000 changes.
The agent side runs in its own process (as in production) so its RSS is its own.
Run: python bench/agent_sync.py [--skus 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from agent_common import ROOT, bench_world, bulk_catalog, cpu_seconds, postgres_cpu


def worker() -> None:
    """The agent process: full sync, no-op sync, then (when told) the incremental one."""
    import threading

    import psutil

    from agent.runner import Agent
    from agent.settings import AgentSettings

    settings = AgentSettings()  # type: ignore[call-arg]
    agent = Agent(settings)
    agent.start()
    me = psutil.Process()
    peak = {"rss": me.memory_info().rss}
    rss_start = peak["rss"]

    def sample() -> None:  # peak of the current RSS (ru_maxrss would include the launcher's, on Linux)
        while True:
            peak["rss"] = max(peak["rss"], me.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    applied = {"seconds": 0.0}
    original = agent.sync._apply_page

    def timed_apply(*args):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(*args)
        finally:
            applied["seconds"] += time.perf_counter() - t0

    agent.sync._apply_page = timed_apply
    out = {}
    t, cpu = time.perf_counter(), time.process_time()
    full = agent.sync.run()
    out["full_seconds"] = time.perf_counter() - t
    out["agent_cpu_seconds"] = time.process_time() - cpu
    out["full_pages"], out["full_upserts"] = full.pages, full.upserts
    out["apply_seconds"] = applied["seconds"]
    out["peak_rss_mb"] = peak["rss"] / 2**20
    out["rss_before_sync_mb"] = rss_start / 2**20
    t = time.perf_counter()
    noop = agent.sync.run()
    out["noop_seconds"] = time.perf_counter() - t
    out["noop_not_modified"] = noop.not_modified
    t = time.perf_counter()
    noop2 = agent.sync.run()
    out["noop_304_seconds"] = time.perf_counter() - t
    out["noop_304"] = noop2.not_modified
    print(json.dumps(out), flush=True)
    sys.stdin.readline()  # the parent changes 1,000 SKUs at HQ
    t = time.perf_counter()
    inc = agent.sync.run()
    print(json.dumps({"incremental_seconds": time.perf_counter() - t, "incremental_upserts": inc.upserts,
                      "incremental_pages": inc.pages,
                      "peak_rss_mb": peak["rss"] / 2**20}), flush=True)
    agent.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker()
    load_before = os.getloadavg()
    with bench_world() as (hq, site, site_url):
        t = time.perf_counter()
        bulk_catalog(hq, args.skus)
        print(f"seeded {args.skus} SKUs at HQ in {time.perf_counter() - t:.1f}s (not timed below)")
        from sitedb.migrate import upgrade

        upgrade(site_url)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **site.env(metrics_port=0, sync_page_limit=args.page,
                                                                   log_level="WARNING")}
        import psutil
        from sqlalchemy import create_engine

        probe = create_engine(site_url)
        pg_cpu = postgres_cpu(probe)
        me = psutil.Process()
        cpu0 = (cpu_seconds(me), pg_cpu())
        proc = subprocess.Popen([sys.executable, __file__, "--worker"], env=env, cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        first = json.loads(proc.stdout.readline())
        hq_cpu, pg_used = cpu_seconds(me) - cpu0[0], pg_cpu() - cpu0[1]
        probe.dispose()
        from hq import catalog

        for i in range(0, 2000, 2):  # 1,000 changed SKUs (new prices)
            hq.seed_item(f"sku{i:06d}", category="phone", price_cents=12345, stock_kind="direct_topup",
                         account_pattern=r"^\d{5,12}$")
        load_after_full = os.getloadavg()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        proc.wait(60)
        del catalog
    n = args.skus
    print(f"full sync      : {n} SKUs in {first['full_seconds']:.2f}s ({n / first['full_seconds']:,.0f} SKUs/s), "
          f"{first['full_pages']} pages of {args.page}")
    print(f"agent CPU      : {first['agent_cpu_seconds']:.2f}s (all threads: fetch, parse, plan, write)")
    print(f"HQ, PostgreSQL : {hq_cpu:.2f}s CPU of HQ (the bench process), {pg_used:.2f}s of PostgreSQL (both "
          f"databases), from the agent's start to the end of its no-op resyncs")
    print(f"load average   : {load_before[0]:.1f} before, {load_after_full[0]:.1f} after the full sync (2 cores)")
    print(f"local apply    : {first['apply_seconds']:.2f}s of it writing pages ({n / first['apply_seconds']:,.0f} SKUs/s); "
          "the rest is waiting on HQ's pages (fetched ahead while a page is written)")
    print(f"agent peak RSS : {max(first['peak_rss_mb'], second['peak_rss_mb']):.0f} MB "
          f"(after start, before sync: {first['rss_before_sync_mb']:.0f} MB)")
    print(f"no-op resync   : {first['noop_seconds'] * 1000:.0f} ms (empty page), then "
          f"{first['noop_304_seconds'] * 1000:.0f} ms with ETag 304={first['noop_304']}")
    print(f"incremental    : {second['incremental_upserts']} changes in {second['incremental_seconds']:.2f}s "
          f"({second['incremental_pages']} pages)")


if __name__ == "__main__":
    main()
