"""Benchmark HQ over HTTP on loopback: risk decisions/s (+p99), heartbeats/s, catalog pages/s.

    python bench/hq_bench.py                      # PostgreSQL (throwaway cluster), 2 workers
    python bench/hq_bench.py --db sqlite --workers 1
    python bench/hq_bench.py --database-url postgresql://...

HQ runs as a real server process (`python -m hq`, uvicorn); the load
generator is a bounded pool of threads with keep-alive httpx clients, each
phase runs for a fixed time. The generator shares the CPU with the server,
so figures are a floor for a machine where they run apart.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(hq_dir: Path, database_url: str | None, sites: int, items: int, keys: int) -> list[str]:
    """Catalog, card keys and licences written straight into HQ's database; returns site tokens."""
    from hq import catalog, inventory, licences
    from hq.service import HQ
    from hq.settings import HQSettings

    service = HQ.open(HQSettings(dir=hq_dir, database_url=database_url, registry_url=None))
    catalog.upsert_many(service, "bench", [(f"game-{i}", catalog.ItemSpec(
        name=f"点券 {i}", category="game" if i % 2 == 0 else "phone", face_value_cents=1000, price_cents=950,
        max_qty=10)) for i in range(items)])
    rows = "".join(f"game-0,K{i:07d},{secrets.token_urlsafe(12)}\n" for i in range(keys))
    inventory.import_csv(service, "bench", "sku,serial,secret\n" + rows)
    tokens = [str(licences.issue(service, "bench", f"bench-{i}", "pro", ["game", "phone"], 365)["token"])
              for i in range(sites)]
    service.close()
    return tokens


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the HQ process and its worker processes."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_phase(name: str, seconds: float, threads: int, call: Callable[[httpx.Client, int], int],
              server_pid: int) -> dict:
    """Run `call` from `threads` threads for `seconds`; returns ok/s, latency percentiles, server CPU used."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    units = [0]

    def worker(tid: int) -> None:
        local, n, done = [], 0, 0
        with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1)) as client:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    done += call(client, tid * 10_000_000 + n)
                    local.append(time.perf_counter() - t0)
                except Exception:
                    with lock:
                        errors[0] += 1
                n += 1
        with lock:
            latencies.extend(local)
            units[0] += done

    cpu_before = server_cpu_seconds(server_pid)
    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    cpu = server_cpu_seconds(server_pid) - cpu_before
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")  # noqa: E731
    return {"phase": name, "requests": len(latencies), "errors": errors[0], "per_second": units[0] / elapsed,
            "req_per_second": len(latencies) / elapsed, "p50_ms": q(0.50), "p99_ms": q(0.99),
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
            "server_cpu_s": cpu, "per_server_cpu_second": units[0] / cpu if cpu else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--database-url")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--batch", type=int, default=1, help="orders per POST /v1/orders")
    args = ap.parse_args()

    with ExitStack() as stack:
        url = args.database_url
        if url is None and args.db == "postgres":
            from tests.hq.pg import fresh_database, plain
            from tests.support.postgres import postgres_cluster

            url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
        hq_dir = Path(tempfile.mkdtemp(prefix="hq-bench-"))
        tokens = seed(hq_dir, url, args.sites, items=2000, keys=50_000)
        port = free_port()
        env = {**os.environ, "KIT_HQ_DIR": str(hq_dir), "KIT_HQ_BIND": f"127.0.0.1:{port}",
               "KIT_HQ_WORKERS": str(args.workers), "KIT_HQ_SITE_RATE_PER_SECOND": "100000",
               "KIT_HQ_SITE_RATE_BURST": "100000", "PYTHONPATH": str(ROOT)}
        if url:
            env["KIT_HQ_DATABASE_URL"] = url
        server = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stack.callback(lambda: (server.terminate(), server.wait(timeout=20)))
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit("HQ did not start: " + server.stderr.read().decode()[-2000:] if server.stderr else "")

        run_id = secrets.token_hex(3)
        now = datetime.now(timezone.utc).isoformat()

        def decide(client: httpx.Client, n: int) -> int:
            token = tokens[n % len(tokens)]
            orders = [{"order_id": f"{run_id}-{n}-{j}", "sku": "game-0", "quantity": 1, "unit_price_cents": 990,
                       "currency": "CNY", "created_at": now,
                       "buyer": {"account": f"acct-{n}-{j}", "contact": f"c{n}-{j}@example.cn",
                                 "ip": f"10.{n % 250}.{j % 250}.{n % 199}", "region": "CN"}}
                      for j in range(args.batch)]
            r = client.post(f"{base}/v1/orders", json={"orders": orders},
                            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"{run_id}-{n}"})
            r.raise_for_status()
            return len(r.json()["results"])

        def beat(client: httpx.Client, n: int) -> int:
            r = client.post(f"{base}/v1/heartbeat", headers={"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
                            json={"version": "0.1.0", "applied_seq": 0, "health": {"db": "ok"},
                                  "counters": {"orders_total": n}})
            r.raise_for_status()
            return 1

        def page(client: httpx.Client, n: int) -> int:
            r = client.get(f"{base}/v1/catalog", params={"limit": 500},
                           headers={"Authorization": f"Bearer {tokens[n % len(tokens)]}"})
            r.raise_for_status()
            return 1

        label = f"{args.db if not args.database_url else 'given-url'}, {args.workers} worker(s), {args.threads} client threads"
        print(f"HQ benchmark ({label}, {args.seconds:.0f}s per phase, {os.cpu_count()} CPUs shared with the load generator)")
        for name, fn in ((f"risk decisions (batch={args.batch})", decide), ("heartbeats", beat),
                         ("catalog pages (limit=500)", page)):
            res = run_phase(name, args.seconds, args.threads, fn, server.pid)
            print(f"  {res['phase']:<30} {res['per_second']:7.0f}/s  requests {res['requests']:6d}  "
                  f"errors {res['errors']:2d}  p50 {res['p50_ms']:7.1f} ms  p99 {res['p99_ms']:7.1f} ms  "
                  f"server CPU {res['server_cpu_s']:5.1f}s -> {res['per_server_cpu_second']:6.0f} per CPU-second")
        print(f"  host load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
