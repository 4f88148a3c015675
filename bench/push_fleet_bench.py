"""10,000 agents holding the push channel against one HQ process (issue 19).

    python bench/push_fleet_bench.py                    # 10,000 agents, PostgreSQL (throwaway cluster)
    python bench/push_fleet_bench.py --agents 2000 --single 10

HQ runs as a real server process (`python -m hq`, `--workers`, one by default; PostgreSQL) with N licensed
sites seeded in one INSERT per table. A load generator in its own process (this script with
`--clients`, plain asyncio sockets, one keep-alive connection per agent) holds one long-poll per
site as the agent does (`GET /v1/commands/wait?after=…&wait=25`, asking again at once after
each answer), so HQ's figures are measured apart from it. Printed:

- HQ's memory (RSS of its process) with every agent parked, and its CPU over an idle window
  of two holds (every agent re-polls twice: that is what idle costs);
- one site: a `sync_now` command queued for one site from another process (`hq.sites.sync_now`;
  PostgreSQL NOTIFY wakes HQ), timed from before the queuing transaction to the generator reading
  the answer; `--single` rounds, a different site each, p50/p99/max;
- all sites: one bulk enqueue (`hq.commands.enqueue_many`: one INSERT … SELECT, one NOTIFY) of a
  command for every site, then each agent's delivery time from before that transaction;
  p50/p99/max and when the last one arrived.

Agents connect in paced steps (`--pace` a second): each agent's first ask holds nothing, and no
step opens while more than two steps' agents wait for that first answer, so the ramp follows what
HQ serves and the listen backlog never overflows.

Bounded: every phase has a deadline and the whole run stops itself after `--budget` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

WAIT = 25  # the agent's default hold (agent.settings.push_wait)


# -- the load generator (a process of its own) ---------------------------------------------

async def _agent(site: str, token: str, host: str, port: int, opened: list[int]) -> None:
    """One agent's channel: a long-poll, re-opened at once; each command received is printed with the time.
    Its very first ask holds nothing (`wait=0`): its answer says HQ accepted and served the connection, which
    paces the ramp. A dropped connection is reported (`D`) and opened again a second later, as the agent does."""
    after, first = 0, True
    head = f"Host: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    while True:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            while True:
                hold = 0 if first else WAIT
                writer.write(f"GET /v1/commands/wait?after={after}&wait={hold} HTTP/1.1\r\n{head}".encode())
                header = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in header.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                got = time.time()
                if first:
                    opened[0] += 1
                    first = False
                if not header.startswith(b"HTTP/1.1 200"):
                    print(f"E {site} {header.split(b' ')[1].decode()}", flush=True)
                    await asyncio.sleep(1)
                    continue
                for command in json.loads(body)["commands"]:
                    claims = json.loads(base64.urlsafe_b64decode(command.split(".")[1] + "=="))
                    after = max(after, claims["seq"])
                    print(f"R {site} {claims['seq']} {got:.6f}", flush=True)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            print(f"D {site} {type(exc).__name__}", flush=True)
            await asyncio.sleep(1)


async def _clients(path: Path, base: str, pace: int) -> None:
    host, port = base.removeprefix("http://").split(":")
    pairs = [line.split("\t") for line in path.read_text().splitlines()]
    opened = [0]
    tasks = []
    step = max(1, pace // 10)
    for i in range(0, len(pairs), step):  # `pace` agents a second, in tenths, never 2 tenths ahead of HQ serving them
        tasks += [asyncio.create_task(_agent(s, t, host, int(port), opened)) for s, t in pairs[i:i + step]]
        await asyncio.sleep(0.1)
        while opened[0] < min(len(pairs), i + step) - 2 * step:
            await asyncio.sleep(0.02)
    while opened[0] < len(pairs):
        await asyncio.sleep(0.1)
    print(f"C {opened[0]}", flush=True)
    await asyncio.gather(*tasks)


# -- the run ---------------------------------------------------------------------------------

def seed(hq_dir: Path, url: str, count: int) -> Path:
    """`count` active sites with a licence each, in one INSERT per table; their tokens in a file (0600)."""
    from datetime import timedelta

    from sqlalchemy import insert

    from hq.clock import utcnow
    from hq.models import Licence, Site
    from hq.service import HQ
    from hq.settings import HQSettings
    from kitcore.licence.token import issue_licence

    service = HQ.open(HQSettings(dir=hq_dir, database_url=url, registry_url=None))
    now = utcnow()
    try:
        sites, lics, tokens = [], [], []
        for i in range(count):
            site, jti = f"push-{i:05d}", f"push-jti-{i:05d}"
            sites.append({"id": site, "created_at": now, "status": "active", "current_jti": jti, "command_seq": 0,
                          "applied_seq": 0, "settlement_cadence": "monthly", "ring": i % 4})
            lics.append({"jti": jti, "site_id": site, "tier": "basic", "features": [], "categories": ["game"],
                         "regions": ["CN"], "revenue_share_bps": 0, "issued_at": now,
                         "expires_at": now + timedelta(days=30), "issued_by": "bench", "token_sha256": "0" * 64})
            tokens.append(f"{site}\t{issue_licence(service.keys, site, 'basic', ['game'], 30, 'http://hq', jti=jti)}")
        with service.session() as s:
            s.execute(insert(Site), sites)
            s.execute(insert(Licence), lics)
    finally:
        service.close()
    path = hq_dir / "bench-tokens.tsv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(tokens))
    return path


class Receipts:
    """What the generator printed: agents connected, and (site, seq) → when it read the command."""

    def __init__(self, proc: "subprocess.Popen[str]") -> None:
        self.connected = 0
        self.errors = 0
        self.drops: dict[str, int] = {}  # kind of error → connections dropped and opened again
        self.at: dict[tuple[str, int], float] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: "subprocess.Popen[str]") -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            kind, *rest = line.split()
            with self.lock:
                if kind == "C":
                    self.connected = int(rest[0])
                elif kind == "R":
                    self.at[(rest[0], int(rest[1]))] = float(rest[2])
                elif kind == "E":
                    self.errors += 1
                elif kind == "D":
                    self.drops[rest[1]] = self.drops.get(rest[1], 0) + 1

    def wait(self, keys: list[tuple[str, int]], deadline: float) -> dict[tuple[str, int], float]:
        while time.monotonic() < deadline:
            with self.lock:
                if all(k in self.at for k in keys):
                    return {k: self.at[k] for k in keys}
            time.sleep(0.005)
        with self.lock:
            return {k: self.at[k] for k in keys if k in self.at}


def queue_one(service, site: str) -> int:  # type: ignore[no-untyped-def]
    """A `sync_now` for one site, as the fleet page's button queues it; its seq."""
    from hq import sites

    return int(sites.sync_now(service, "bench", site)["seq"])


def queue_all(service) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """A `sync_now` for every site in one bulk enqueue (one INSERT … SELECT, one NOTIFY); site → its seq."""
    from hq import commands
    from hq.models import Site

    with service.session() as s:
        queued = commands.enqueue_many(s, Site.status != "revoked", "sync_now", {})
    return {site: q.seq for site, q in queued.items()}


def postgres_cpu(url: str) -> float:
    """CPU seconds so far of the PostgreSQL cluster HQ uses (its postmaster and every backend)."""
    from hq_bench import server_cpu_seconds
    from hq_wrk import postgres_pids

    return sum(server_cpu_seconds(pid) for pid in postgres_pids(url))


def hq_usage(pid: int) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds so far) of the HQ process and its worker processes (`--workers`)."""
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    times = [p.cpu_times() for p in procs]
    return sum(p.memory_info().rss for p in procs) / 2**20, sum(t.user + t.system for t in times)


def quiet(pid: int, deadline: float) -> float:
    """Wait until HQ's CPU over 2 s falls under 10 % (every long-poll parked); seconds waited."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        before = hq_usage(pid)[1]
        time.sleep(2)
        if hq_usage(pid)[1] - before < 0.2:
            break
    return time.monotonic() - started


def q(values: list[float], share: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(share * len(values)))] if values else float("nan")


def run(url: str, agents: int, single: int, budget: float, pace: int, stack: ExitStack, workers: int = 1) -> None:
    from hq.service import HQ
    from hq.settings import HQSettings
    from hq_wrk import start_server

    end = time.monotonic() + budget
    hq_dir = Path(tempfile.mkdtemp(prefix="hq-push-fleet-"))
    stack.callback(shutil.rmtree, hq_dir, True)
    started = time.perf_counter()
    tokens = seed(hq_dir, url, agents)
    print(f"  seeded {agents:,} sites and signed their licences in {time.perf_counter() - started:.1f} s")
    base, pid = start_server(hq_dir, url, workers, stack)
    rss0, _ = hq_usage(pid)
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores before the agents")
    gen = subprocess.Popen([sys.executable, __file__, "--clients", str(tokens), "--base", base, "--pace", str(pace)],
                           cwd=ROOT,
                           stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    stack.callback(gen.kill)
    receipts = Receipts(gen)
    ramp = time.monotonic()
    while receipts.connected < agents and time.monotonic() < end and gen.poll() is None:
        time.sleep(0.2)
    if receipts.connected < agents:
        raise SystemExit(f"only {receipts.connected} agents connected")
    settled = quiet(pid, min(end, time.monotonic() + 60))
    print(f"  {agents:,} agents connected in {time.monotonic() - ramp:.1f} s; HQ quiet {settled:.1f} s later; "
          f"connections dropped so far: {receipts.drops or 0}")
    rss, cpu0 = hq_usage(pid)
    pg0 = postgres_cpu(url)
    window = 2 * WAIT
    time.sleep(min(window, max(0.0, end - time.monotonic() - 60)))
    rss_after, cpu1 = hq_usage(pid)
    idle = (cpu1 - cpu0) / window
    pg_idle = (postgres_cpu(url) - pg0) / window
    print(f"  HQ memory: {rss0:.0f} MiB before the agents, {rss:.0f} MiB with {agents:,} parked "
          f"({(rss - rss0) * 1024 / agents:.1f} KiB each), {rss_after:.0f} MiB {window} s on")
    print(f"  HQ CPU at idle: {idle * 100:.1f} % of one core over {window} s (each agent re-polled "
          f"every {WAIT} s); PostgreSQL {pg_idle * 100:.1f} %; load average {os.getloadavg()[0]:.1f}")

    service = HQ.open(HQSettings(dir=hq_dir, database_url=url, registry_url=None, migrate=False))
    stack.callback(service.close)
    one = []
    for i in range(single):
        site = f"push-{(i * 7919) % agents:05d}"
        t0 = time.time()
        seq = queue_one(service, site)
        got = receipts.wait([(site, seq)], min(end, time.monotonic() + 30))
        if got:
            one.append((got[(site, seq)] - t0) * 1000)
        time.sleep(0.2)
    print(f"  one site ({len(one)} of {single} delivered): p50 {q(one, 0.5):.0f} ms  p99 {q(one, 0.99):.0f} ms  "
          f"max {max(one, default=float('nan')):.0f} ms")

    import psutil

    generator = psutil.Process(gen.pid)
    cpu_before, pg_before, gen_before = hq_usage(pid)[1], postgres_cpu(url), sum(generator.cpu_times()[:2])
    t0 = time.time()
    seqs = queue_all(service)
    queued = time.time() - t0
    got = receipts.wait(list(seqs.items()), min(end, time.monotonic() + 300))
    fan_out_cpu, fan_out_pg = hq_usage(pid)[1] - cpu_before, postgres_cpu(url) - pg_before
    fan_out_gen = sum(generator.cpu_times()[:2]) - gen_before
    times = [(at - t0) * 1000 for at in got.values()]
    print(f"  all {agents:,} sites ({len(got):,} delivered; queuing took {queued * 1000:.0f} ms): "
          f"first {min(times, default=float('nan')):.0f} ms  p50 {q(times, 0.5):.0f} ms  p99 {q(times, 0.99):.0f} ms  "
          f"last {max(times, default=float('nan')):.0f} ms")
    print(f"  CPU of that fan-out: HQ {fan_out_cpu:.2f} s ({fan_out_cpu * 1e6 / max(len(got), 1):.0f} µs a delivery, "
          f"the re-ask included), PostgreSQL {fan_out_pg:.2f} s (the queuing included), the simulated agents "
          f"{fan_out_gen:.2f} s")
    print(f"  non-200 answers: {receipts.errors}; connections dropped and reopened: {receipts.drops or 0}; "
          f"load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=30, help="one-site rounds (at most 200)")
    ap.add_argument("--budget", type=float, default=600, help="seconds the whole run may take (at most 900)")
    ap.add_argument("--pace", type=int, default=1000, help="agents connecting a second (at most 5000)")
    ap.add_argument("--workers", type=int, default=1, help="HQ worker processes (at most 4; NOTIFY wakes each)")
    ap.add_argument("--clients", type=Path, help=argparse.SUPPRESS)  # the load generator's own process
    ap.add_argument("--base", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.clients:
        asyncio.run(_clients(args.clients, args.base, args.pace))
        return
    agents = max(10, min(args.agents, 10_000))
    with ExitStack() as stack:
        from tests.hq.pg import fresh_database, plain
        from tests.support.postgres import postgres_cluster

        url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
        workers = max(1, min(args.workers, 4))
        print(f"push channel, {agents:,} agents, one HQ ({workers} worker{'s' if workers > 1 else ''}) on PostgreSQL")
        run(url, agents, max(1, min(args.single, 200)), min(args.budget, 900), max(10, min(args.pace, 5000)), stack,
            workers)


if __name__ == "__main__":
    main()
