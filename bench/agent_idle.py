"""Agent idle footprint and /metrics scrape cost.

Prints: idle RSS and CPU of the agent process (heartbeat/sync/stats loops running at their
production intervals against the real HQ), /metrics scrape latency p50/p99 and series count.
Run: python bench/agent_idle.py [--seconds 20] [--scrapes 300]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx
import psutil

from agent_common import bench_world, p


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--scrapes", type=int, default=300)
    args = parser.parse_args()
    from prometheus_client.parser import text_string_to_metric_families

    from tests.agent.helpers import AgentProcess, migrated_engine

    with bench_world() as (hq, site, site_url):
        for i in range(200):
            hq.seed_item(f"idle-{i}", category="game", price_cents=1000, stock_kind="direct_topup")
        migrated_engine(site_url).dispose()
        agent = AgentProcess(site, Path(site.path) / "agent.log", heartbeat_interval=30, sync_interval=60,
                             stats_interval=5, forward_idle=1, log_level="WARNING")
        agent.start()
        time.sleep(5)  # first sync and heartbeat done
        proc = psutil.Process(agent.proc.pid)
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        rss = []
        while time.monotonic() - t0 < args.seconds:
            rss.append(proc.memory_info().rss / 2**20)
            time.sleep(0.5)
        cpu1 = proc.cpu_times()
        busy = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (time.monotonic() - t0)
        print(f"idle agent     : RSS {max(rss):.0f} MB (median {p(rss, 50):.0f} MB), CPU {busy * 100:.2f} % "
              f"of one core over {args.seconds:.0f}s")
        times = []
        with httpx.Client() as c:
            for _ in range(args.scrapes):
                t = time.perf_counter()
                text = c.get(f"{agent.url}/metrics").text
                times.append((time.perf_counter() - t) * 1000)
        series = sum(len(f.samples) for f in text_string_to_metric_families(text))
        print(f"/metrics       : p50 {p(times, 50):.1f} ms, p99 {p(times, 99):.1f} ms over {args.scrapes} scrapes; "
              f"{series} series, {len(text)} bytes")
        assert agent.terminate() == 0


if __name__ == "__main__":
    main()
