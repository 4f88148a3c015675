"""Push channel: time from queuing a suspend/resume at HQ to the site's database showing it.

The real HQ (PostgreSQL, heartbeat interval 60 s) and the agent as its own process
(`python -m agent`, site database on PostgreSQL). Each round queues one command and
polls the site database every 2 ms until the licence status changes; commands
alternate suspend/resume. Two ways of queuing: in HQ's own process (the API or the
fleet page: the hub is woken directly) and from another process on the same
database (`kitctl hq …`, another HQ instance: PostgreSQL NOTIFY wakes it).
Prints p50/p99/max per way, and how many heartbeats the agent sent meanwhile.
`--idle N` parks N other sites' long-polls at the same HQ meanwhile (simulated agents in
this process, re-polling as the agent does), to see that a wake costs per site, not per
waiter. Run: python bench/push_bench.py [--commands 100] [--idle 1000]
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
    parser.add_argument("--idle", type=int, default=0, help="other sites' parked long-polls (bounded: ≤ 2000)")
    args = parser.parse_args()
    count = max(2, min(args.commands, 1000))
    idle = max(0, min(args.idle, 2000))
    from hq import licences
    from hq.service import HQ
    from hq.settings import HQSettings
    from tests.agent.helpers import AgentProcess, metric_value, migrated_engine

    with bench_world("push-bench", heartbeat_interval_seconds=INTERVAL, registry_url=None) as (hq, site, site_url):
        engine = migrated_engine(site_url)
        agent = AgentProcess(site, Path(site.path) / "agent.log", heartbeat_interval=INTERVAL,
                             sync_interval=INTERVAL, min_interval=5, log_level="WARNING")
        agent.start()
        other = HQ.open(HQSettings(dir=hq.hq_dir, database_url=hq.service.settings.database_url), migrate=False)
        crowd = IdleAgents(hq.url, [hq.issue_licence(f"idle-{i}") for i in range(idle)]) if idle else None
        try:
            if crowd is not None:
                crowd.start()
                deadline = time.monotonic() + 60
                while hq.app.state.push.waiting_count < idle and time.monotonic() < deadline:
                    time.sleep(0.2)
                print(f"idle sites parked at HQ: {hq.app.state.push.waiting_count - 1} of {idle}")
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
            if crowd is not None:
                crowd.stop()
            other.close()
            agent.terminate()
            engine.dispose()


class IdleAgents:
    """Other sites holding the push channel (asyncio in a thread): each re-polls when answered."""

    def __init__(self, url: str, tokens: list[str]) -> None:
        import threading

        self.url, self.tokens = url, tokens
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.loop = None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        import asyncio

        import httpx

        async def hold(client: httpx.AsyncClient, token: str) -> None:
            while True:
                try:
                    await client.get("/v1/commands/wait", params={"after": 0, "wait": 25},
                                     headers={"Authorization": f"Bearer {token}"})
                except httpx.HTTPError:
                    await asyncio.sleep(1)

        async def main() -> None:
            limits = httpx.Limits(max_connections=len(self.tokens) + 10, max_keepalive_connections=len(self.tokens))
            async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=40) as client:
                await asyncio.gather(*(hold(client, t) for t in self.tokens))

        self.loop = asyncio.new_event_loop()
        self.loop.create_task(main())
        try:
            self.loop.run_forever()
        except RuntimeError:
            pass


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
