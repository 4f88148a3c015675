"""The fleet page's load time with 10,000 sites in HQ's database (issue 19: p99 under 300 ms).

    python bench/fleet_page_bench.py                   # PostgreSQL (throwaway cluster) and SQLite
    python bench/fleet_page_bench.py --db sqlite --rounds 20

Seeds 10,000 sites (hq.testing.seed_fleet: one multi-row INSERT per table; states, tiers,
versions, rings and 100 silent sites with their alerts), starts HQ as a real server process
(`python -m hq`, one worker), logs in as an operator and loads pages one after another as an
operator's browser does (the HTML, not its stylesheet): the first page, deep pages, each
filter, each sort, searches, the Chinese page and a site page. Prints p50/p99/max of the
whole mix and per kind, the HTML's size, the load average, and the CPU time HQ's process (and
PostgreSQL's) spent per page: on a shared machine the latency follows the load, the CPU much less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hq_bench import server_cpu_seconds  # noqa: E402
from hq_wrk import postgres_pids, start_server  # noqa: E402

PAGES = {
    "first page": "/fleet",
    "page 100 of 200": "/fleet?page=100",
    "last page, 200 a page": "/fleet?page=50&size=200",
    "search site": "/fleet?q=site-0424",
    "search licensee": "/fleet?q=Licensee%2042",
    "search domain": "/fleet?q=shop777.",
    "state + tier + version": "/fleet?state=suspended&tier=pro&version=0.3.1",
    "expired, by expiry": "/fleet?state=expired&sort=expires",
    "alert": "/fleet?alert=silent",
    "ring, page 10": "/fleet?ring=2&page=10",
    "sort heartbeat desc, page 150": "/fleet?sort=heartbeat&order=desc&page=150",
    "sort version": "/fleet?sort=version&page=70",
    "zh-CN": "/fleet?lang=zh-CN&page=3",
    "site page": "/fleet/sites/site-04242",
}


def seed(hq_dir: Path, url: str | None, sites: int) -> str:
    """The fleet and an operator token (HQ opened once here, migrating the database)."""
    from hq import operators
    from hq.service import HQ
    from hq.settings import HQSettings
    from hq.testing import seed_fleet

    service = HQ.open(HQSettings(dir=hq_dir, database_url=url, registry_url=None))
    try:
        started = time.perf_counter()
        seed_fleet(service, sites)
        print(f"  seeded {sites:,} sites in {time.perf_counter() - started:.1f} s")
        return operators.add(service, "bench")
    finally:
        service.close()


def run(db: str, url: str | None, sites: int, rounds: int, stack: ExitStack) -> None:
    hq_dir = Path(tempfile.mkdtemp(prefix="hq-fleet-"))
    stack.callback(shutil.rmtree, hq_dir, True)
    token = seed(hq_dir, url, sites)
    base, pid = start_server(hq_dir, url, 1, stack)
    client = stack.enter_context(httpx.Client(base_url=base, timeout=30))
    assert client.post("/fleet/login", data={"token": token}).status_code == 303
    for path in PAGES.values():  # warm: templates compiled, connections open
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    sizes: dict[str, int] = {}
    db_pids = postgres_pids(url)
    cpu_before = server_cpu_seconds(pid), sum(server_cpu_seconds(p) for p in db_pids)
    for _ in range(rounds):
        for name, path in PAGES.items():
            started = time.perf_counter()
            response = client.get(path)
            times[name].append((time.perf_counter() - started) * 1000)
            sizes[name] = len(response.content)
    hq_cpu = server_cpu_seconds(pid) - cpu_before[0]
    db_cpu = sum(server_cpu_seconds(p) for p in db_pids) - cpu_before[1]
    every = sorted(t for ts in times.values() for t in ts)
    print(f"\n  {db}: {sites:,} sites, {len(every)} page loads, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores; CPU per page: HQ {hq_cpu / len(every) * 1000:.1f} ms"
          + (f", PostgreSQL {db_cpu / len(every) * 1000:.1f} ms" if db_pids else ""))
    print(f"  {'all pages':32s} p50 {_q(every, 0.5):6.1f} ms  p99 {_q(every, 0.99):6.1f} ms  max {every[-1]:6.1f} ms")
    for name, ts in times.items():
        ts.sort()
        print(f"  {name:32s} p50 {_q(ts, 0.5):6.1f} ms  p99 {_q(ts, 0.99):6.1f} ms  max {ts[-1]:6.1f} ms  "
              f"{sizes[name] / 1024:5.0f} KiB")


def _q(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if len(values) > 2 else statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=30, help="loads of each page (14 pages a round)")
    args = ap.parse_args()
    for db in (["postgres", "sqlite"] if args.db == "both" else [args.db]):
        with ExitStack() as stack:
            url = None
            if db == "postgres":
                from tests.hq.pg import fresh_database, plain
                from tests.support.postgres import postgres_cluster

                url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
            run(db, url, args.sites, args.rounds, stack)


if __name__ == "__main__":
    main()
