"""Benchmark HQ over HTTP on loopback with wrk (a C load generator, cheap on the client side).

    python bench/hq_wrk.py                          # PostgreSQL (throwaway cluster), 2 workers
    python bench/hq_wrk.py --db sqlite --workers 1
    python bench/hq_wrk.py --batch 200 --batch 1    # orders per request, one phase each

Seeds HQ like bench/hq_bench.py (2,000 SKUs, 50,000 card keys, 100 sites), runs it as a
real server process (`python -m hq`, uvicorn), then drives fixed-time phases with
`wrk` and bench/hq_wrk.lua: risk decisions (every order a distinct buyer, so every
rule runs and a key is allocated), heartbeats, catalog pages. For each phase it
prints throughput, p50/p99 latency, the CPU-seconds HQ's processes used (so a
figure from a busy machine can be read per CPU-second), the CPU-seconds of the
throwaway PostgreSQL cluster, wrk's own CPU and the load average. `--py-spy DIR` also records each phase's server stacks (collapsed).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from hq_bench import free_port, seed, server_cpu_seconds  # noqa: E402

LUA = Path(__file__).with_name("hq_wrk.lua")


def postgres_pids(url: str | None) -> list[int]:
    """The postmaster serving `url` on this machine (found by its port option), to count its CPU too."""
    import psutil

    if not url or "127.0.0.1:" not in url:
        return []
    port = url.split("127.0.0.1:", 1)[1].split("/", 1)[0]
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] != "postgres" or (proc.parent() and proc.parent().name() == "postgres"):
            continue
        if f"port={port}" in cmd or ("-p" in cmd and cmd[cmd.index("-p") + 1:cmd.index("-p") + 2] == [port]):
            return [proc.pid]
    return []


def cpu_of(pids: list[int]) -> float:
    return sum(server_cpu_seconds(p) for p in pids)


def wrk_phase(base: str, mode: str, env: dict[str, str], seconds: int, connections: int, threads: int,
              server_pid: int, batch: int = 1, spy: Path | None = None, db_pids: list[int] | None = None) -> dict[str, float]:
    """One wrk run against `base`; returns its RESULT line's numbers plus CPU and load figures."""
    env = {**env, "HQ_BENCH_MODE": mode, "HQ_BENCH_BATCH": str(batch), "HQ_BENCH_RUN": secrets.token_hex(4)}
    recorder = None
    if spy is not None:
        out = spy / f"{mode}-b{batch}.txt"
        recorder = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server_pid), "--subprocesses", "--format", "raw",
                                     "--rate", "50", "--duration", str(seconds), "--output", str(out), "--nonblocking"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    load_before = os.getloadavg()[0]
    cpu_before = server_cpu_seconds(server_pid)
    db_before = cpu_of(db_pids or [])
    child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
                           "-s", str(LUA), base], env=env, capture_output=True, text=True, check=True)
    child_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = server_cpu_seconds(server_pid) - cpu_before
    db_cpu = cpu_of(db_pids or []) - db_before
    if recorder is not None:
        recorder.wait(timeout=seconds + 30)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{proc.stdout}\n{proc.stderr}")
    res: dict[str, float] = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    if proc.stderr.strip():  # error responses, as bench/hq_wrk.lua logged them
        print("    non-2xx samples: " + " | ".join(proc.stderr.strip().splitlines()[:3]), flush=True)
    elapsed = res["duration_us"] / 1e6
    ok = res["requests"] - res["status_errors"]
    res.update(
        per_second=ok * batch / elapsed, req_per_second=res["requests"] / elapsed, server_cpu_s=cpu,
        cpu_ms_per_unit=cpu * 1000 / (ok * batch) if ok else float("nan"),
        db_cpu_s=db_cpu, db_ms_per_unit=db_cpu * 1000 / (ok * batch) if ok else float("nan"),
        wrk_cpu_s=(child_after.ru_utime + child_after.ru_stime) - (child_before.ru_utime + child_before.ru_stime),
        load_before=load_before, load_after=os.getloadavg()[0],
    )
    return res


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:  # a worker stuck on a keep-alive connection
        server.kill()
        server.wait(timeout=10)


def start_server(hq_dir: Path, url: str | None, workers: int, stack: ExitStack,
                 settings: dict[str, str] | None = None) -> tuple[str, int]:
    port = free_port()
    env = {**os.environ, "KIT_HQ_DIR": str(hq_dir), "KIT_HQ_BIND": f"127.0.0.1:{port}",
           "KIT_HQ_WORKERS": str(workers), "KIT_HQ_SITE_RATE_PER_SECOND": "100000",
           "KIT_HQ_SITE_RATE_BURST": "100000", "PYTHONPATH": str(ROOT), **(settings or {})}
    if url:
        env["KIT_HQ_DATABASE_URL"] = url
    server = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(_stop, server)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return base, server.pid
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("HQ did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--database-url")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (one is plenty for loopback)")
    ap.add_argument("--seconds", type=int, default=8, help="per phase (at most 10)")
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--batch", type=int, action="append", help="orders per request; repeat for several phases")
    ap.add_argument("--phases", default="orders,heartbeat,catalog")
    ap.add_argument("--py-spy", type=Path, help="record collapsed server stacks per phase into this directory")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk); bench/hq_bench.py needs no extra tool")
    seconds = min(args.seconds, 10)
    batches = args.batch or [200, 1]

    with ExitStack() as stack:
        url = args.database_url
        if url is None and args.db == "postgres":
            from tests.hq.pg import fresh_database, plain
            from tests.support.postgres import postgres_cluster

            url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
        hq_dir = Path(tempfile.mkdtemp(prefix="hq-wrk-"))
        stack.callback(shutil.rmtree, hq_dir, True)
        tokens = seed(hq_dir, url, args.sites, items=2000, keys=50_000)
        (hq_dir / "tokens.txt").write_text("\n".join(tokens) + "\n")
        base, pid = start_server(hq_dir, url, args.workers, stack)
        env = {**os.environ, "HQ_BENCH_TOKENS": str(hq_dir / "tokens.txt")}
        db_pids = postgres_pids(url)
        if args.py_spy:
            args.py_spy.mkdir(parents=True, exist_ok=True)
        label = "given URL" if args.database_url else args.db
        print(f"HQ wrk benchmark ({label}, {args.workers} worker(s), {args.connections} connections, "
              f"{seconds}s per phase, {os.cpu_count()} CPUs shared with wrk)")
        runs: list[tuple[str, str, int]] = []
        for phase in args.phases.split(","):
            if phase == "orders":
                runs += [(f"risk decisions (batch={b})", "orders", b) for b in batches]
            else:
                runs.append(({"heartbeat": "heartbeats", "catalog": "catalog pages (limit=500)"}[phase], phase, 1))
        for name, mode, batch in runs:
            r = wrk_phase(base, mode, env, seconds, args.connections, args.threads, pid, batch, args.py_spy, db_pids)
            print(f"  {name:<28} {r['per_second']:7.0f}/s  req/s {r['req_per_second']:6.0f}  "
                  f"non-2xx {int(r['status_errors'])}  p50 {r['p50_us'] / 1000:7.1f} ms  p99 {r['p99_us'] / 1000:7.1f} ms  "
                  f"HQ CPU {r['server_cpu_s']:5.1f}s = {r['cpu_ms_per_unit']:6.2f} ms each  "
                  + (f"PostgreSQL CPU {r['db_cpu_s']:4.1f}s = {r['db_ms_per_unit']:5.2f} ms each  " if db_pids else "") +
                  f"wrk CPU {r['wrk_cpu_s']:4.1f}s  load {r['load_before']:.1f}->{r['load_after']:.1f}", flush=True)


if __name__ == "__main__":
    main()
