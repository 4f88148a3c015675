"""The site on Docker Swarm next to the same site on one engine, in one run (issue 22).

Figures printed:
  - home-page pages/s through the proxy's published port (`ab -k -c 16 -t SECONDS`), three ways: the site on the
    shared engine (`kitctl up`, the single-engine peer), then on a private Swarm engine
    (tests/support/swarm_engine.py: its own dockerd in a network namespace of its own) with 1 storefront task,
    then with 2 (`up --replicas 2`);
  - seconds for `up --replicas 2` to converge, and for a colour change (Swarm's rolling update of the
    storefront, start-first, one task at a time, monitored) to converge, as `kitctl up` reports it;
  - the load average before each row, and the CPUs.
The Swarm engine is a single node on the same 2 cores, so a second replica adds processes, not CPUs.

Run: python bench/swarm_bench.py [--seconds 8]   (root; needs the engine, ab, dockerd, ip, and the kit's images built)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack_bench import down, free_port, kitctl, site_args  # noqa: E402
from bench.static_bench import ab  # noqa: E402
from tests.support import swarm_engine  # noqa: E402


def measure(label: str, url: str, seconds: int, rows: list) -> None:
    load = os.getloadavg()[0]
    rows.append((label, ab(url, seconds), load))
    print(f"  {label:<44} {rows[-1][1]['rps']:>7.0f}/s  p99 {rows[-1][1]['p99']:>4.0f} ms  load {load:.1f}", flush=True)


def single_engine(tmp: Path, seconds: int, rows: list) -> None:
    project, port = f"swb{uuid.uuid4().hex[:6]}", free_port()
    try:
        kitctl("up", *site_args(tmp, project, port))
        time.sleep(2)
        measure("one engine (kitctl up)", f"http://127.0.0.1:{port}/", seconds, rows)
    finally:
        down(tmp / project)


def on_swarm(tmp: Path, seconds: int, rows: list, timings: dict[str, float]) -> None:
    from kitcore import __version__

    engine = swarm_engine.start([f"kitctl/{s}:{__version__}" for s in swarm_engine.KIT_SERVICES])
    project, port = f"swb{uuid.uuid4().hex[:6]}", free_port()
    swarm = ("--orchestrator", "swarm", "--docker-host", engine.socket)
    try:
        timings["first up, 1 storefront task"], _ = kitctl("up", *site_args(tmp, project, port), *swarm)
        url = f"http://{engine.addr}:{port}/"
        time.sleep(2)
        measure("swarm, 1 storefront task", url, seconds, rows)
        timings["up --replicas 2 (a task added)"], _ = kitctl("up", "--site-dir", str(tmp / project), "--replicas", "2",
                                                              *swarm)
        time.sleep(2)
        measure("swarm, 2 storefront tasks", url, seconds, rows)
        timings["colour change (rolling update, 2 tasks)"], _ = kitctl(
            "up", "--site-dir", str(tmp / project), "--primary-color", "#ff3366", *swarm)
    finally:
        kitctl("down", "--site-dir", str(tmp / project), "--volumes", "--yes", "--docker-host", engine.socket)
        swarm_engine.stop(engine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    if (why := swarm_engine.available()) is not None:
        raise SystemExit(why)
    rows: list = []
    timings: dict[str, float] = {}
    print(f"home page, ab -k -c 16 -t {args.seconds} through the proxy ({os.cpu_count()} CPUs; load average before each row)")
    with tempfile.TemporaryDirectory(prefix="kitctl-swarm-bench-") as tmp:
        single_engine(Path(tmp), args.seconds, rows)
    with tempfile.TemporaryDirectory(prefix="kitctl-swarm-bench-") as tmp:
        on_swarm(Path(tmp), args.seconds, rows, timings)
    base = rows[0][1]["rps"]
    print("ratios to one engine: " + ", ".join(f"{label} {r['rps'] / base:.2f}x" for label, r, _ in rows[1:]))
    print(f"2 tasks / 1 task on swarm: {rows[2][1]['rps'] / rows[1][1]['rps']:.2f}x")
    for label, seconds in timings.items():
        print(f"  {label:<44} {seconds:6.1f}s (kitctl up until every changed service converged healthy)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
