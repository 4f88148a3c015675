"""Push channel: time from queuing a suspend/resume at HQ to the site's database showing it.

The real HQ (PostgreSQL, heartbeat interval 60 s) and the agent as its own process
(`python -m agent`, site database on PostgreSQL). Each round queues one command and
polls the site database every 2 ms until the licence status changes; commands
alternate suspend/resume. Two ways of queuing: in HQ's own process (the API or the
fleet page: the hub is woken directly) and from another process on the same
database (`kitctl hq …`, another HQ instance: PostgreSQL NOTIFY wakes it).
Prints p50/p99/max per way, and how many heartbeats the agent sent meanwhile.
Run: python bench/push_bench.py [--commands 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sqlalchemy import text

from agent_common import bench_world, p

INTERVAL = 60


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=100, help="commands per way of queuing (bounded: ≤ 1000)")
    args = parser.parse_args()
    count = max(2, min(args.commands, 1000))
    from hq import licences
    from hq.service import HQ
    from hq.settings import HQSettings
    from tests.agent.helpers import AgentProcess, metric_value, migrated_engine

    with bench_world("push-bench", heartbeat_interval_seconds=INTERVAL) as (hq, site, site_url):
        engine = migrated_engine(site_url)
        agent = AgentProcess(site, Path(site.path) / "agent.log", heartbeat_interval=INTERVAL,
                             sync_interval=INTERVAL, min_interval=5, log_level="WARNING")
        agent.start()
        other = HQ.open(HQSettings(dir=hq.hq_dir, database_url=hq.service.settings.database_url), migrate=False)
        try:
            time.sleep(2)  # first heartbeat and sync done, the channel open
            for way, service in (("in HQ's process", hq.service), ("another process (NOTIFY)", other)):
                beats0 = metric_value(agent.metrics_text(), "kitagent_hq_request_duration_seconds_count",
                                      {"endpoint": "heartbeat"}) or 0
                times = [_round(engine, service, licences, i) for i in range(count)]
                beats = (metric_value(agent.metrics_text(), "kitagent_hq_request_duration_seconds_count",
                                      {"endpoint": "heartbeat"}) or 0) - beats0
                print(f"{way:<26}: {count} commands, queue → applied p50 {p(times, 50) * 1000:.0f} ms, "
                      f"p99 {p(times, 99) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
                      f"(heartbeat interval {INTERVAL} s; {beats:.0f} heartbeats meanwhile, each an ack)")
        finally:
            other.close()
            agent.terminate()
            engine.dispose()


def _round(engine, service, licences, i: int) -> float:  # type: ignore[no-untyped-def]
    suspend = i % 2 == 0
    want = "suspended" if suspend else "active"
    time.sleep(0.05)  # the channel is parked again after the previous command
    started = time.perf_counter()
    if suspend:
        licences.suspend(service, "bench", "push-bench", f"round {i}")
    else:
        licences.resume(service, "bench", "push-bench")
    deadline = started + 30
    with engine.connect() as conn:
        while True:
            status = conn.execute(text("SELECT licence_status FROM site_state WHERE id = 1")).scalar()
            if status == want:
                return time.perf_counter() - started
            if time.perf_counter() > deadline:
                raise SystemExit(f"round {i}: the site did not become {want} within 30 s")
            conn.rollback()
            time.sleep(0.002)


if __name__ == "__main__":
    main()
