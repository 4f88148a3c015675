"""Home and product pages per second, and p99 latency, of the real storefront on loopback.

Starts `python -m storefront` on SQLite (or --database-url) with a seeded
catalog, then runs a bounded closed-loop load (N client threads for D seconds
per page) and prints one comparable line per page.

    python bench/storefront_bench.py [--seconds 10] [--clients 8] [--database-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.storefront.support import running_storefront, seed, write_site_files  # noqa: E402


def load(base: str, path: str, seconds: float, clients: int) -> dict[str, float]:
    """Closed loop: each client (one keep-alive connection) sends the next request when the previous is answered.

    The client is the standard library's http.client, so the load generator
    itself costs as little CPU as possible on the shared machine.
    """
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        mine, bad = [], 0
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            mine.append(time.perf_counter() - start)
            bad += not ok
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "pages_per_s": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--database-url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (1 <= args.clients <= 64 and 1 <= args.seconds <= 60):
        parser.error("--clients must be 1..64 and --seconds 1..60 (bounded load)")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        env = write_site_files(Path(tmp) / "site")
        seed(url)
        with running_storefront(url, env, Path(tmp) / "storefront.log") as base:
            httpx.get(base + "/")  # warm up templates and caches
            results = {page: load(base, path, args.seconds, args.clients)
                       for page, path in (("home", "/"), ("product", "/p/G-QQ-100"))}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for page, r in results.items():
            print(f"{page:8s} {r['pages_per_s']:8.1f} pages/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                  f"({r['requests']} requests, {r['errors']} errors, {args.clients} clients, {args.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
