"""kitctl up against Debian's docker-compose (v1) on the same stack, in the same run.

Two figures, each printed as kitctl's time, compose's time and the ratio:
  1. command → every service healthy, images present, no containers yet
     (kitctl returns when healthy; compose `up -d` is followed by polling the
     engine until every container reports healthy);
  2. a no-op second run with everything already up.
The stack is tests/deploy/stack.py's (PostgreSQL from kitctl/db, the stand-in
web app on the kit's base image, Caddy from kitctl/proxy), written twice so
the two tools never share containers, ports or volumes.

Run: python bench/deploy_bench.py [--rounds N]   (needs the engine and the kit images)
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deploy.stack import SiteSpec, build_web_image, issue_test_licence, write_site  # noqa: E402

WEB = "kitctl-bench/web:1.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def wait_healthy(client, project: str, services: int, deadline: float = 300) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = client.api.containers(filters={"label": f"com.docker.compose.project={project}"})
        if len(found) == services and all("(healthy)" in c["Status"] for c in found):
            return
        time.sleep(0.2)
    raise SystemExit(f"{project}: not healthy within {deadline}s")


def kitctl_round(site: Path) -> tuple[float, float]:
    up = [sys.executable, "-m", "kitctl", "up", "--site-dir", str(site)]
    cold = run(up, ROOT)
    noop = run(up, ROOT)
    run([sys.executable, "-m", "kitctl", "down", "--site-dir", str(site), "--volumes", "--yes"], ROOT)
    return cold, noop


def compose_round(client, site: Path) -> tuple[float, float]:
    up = ["docker-compose", "--compatibility", "up", "-d"]
    started = time.monotonic()
    run(up, site)
    wait_healthy(client, site.name, 3)
    cold = time.monotonic() - started
    noop = run(up, site)
    run(["docker-compose", "down", "--volumes"], site)
    return cold, noop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("docker-compose"):
        raise SystemExit("Debian's docker-compose (v1) is not installed: apt-get install docker-compose")
    import docker

    client = docker.from_env(timeout=300)
    build_web_image(client, WEB, "1.0")
    results: dict[str, list[tuple[float, float]]] = {"kitctl": [], "compose": []}
    with tempfile.TemporaryDirectory(prefix="kitctl-bench-") as tmp:
        token, jwks = issue_test_licence(Path(tmp) / "hq", "bench", None)
        for i in range(args.rounds):
            for tool in ("kitctl", "compose"):
                site = Path(tmp) / f"bench{tool}{i}"
                write_site(site, SiteSpec(site.name, "Bench 商店", free_port(), WEB), token, jwks)
                results[tool].append(kitctl_round(site) if tool == "kitctl" else compose_round(client, site))
    report(results)


def report(results: dict[str, list[tuple[float, float]]]) -> None:
    k_cold = statistics.median(r[0] for r in results["kitctl"])
    c_cold = statistics.median(r[0] for r in results["compose"])
    k_noop = statistics.median(r[1] for r in results["kitctl"])
    c_noop = statistics.median(r[1] for r in results["compose"])
    load = os.getloadavg()[0]
    print(f"deploy benchmark, median of {len(results['kitctl'])} rounds (load average {load:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'':<34}{'kitctl':>9}{'compose v1':>12}{'ratio':>8}   goal")
    print(f"{'command → all healthy (images present)':<34}{k_cold:>8.2f}s{c_cold:>11.2f}s{k_cold / c_cold:>7.2f}x   ≤ 0.7x (issue 24)")
    print(f"{'no-op second run':<34}{k_noop:>8.2f}s{c_noop:>11.2f}s{k_noop / c_noop:>7.2f}x   ≤ 0.5x, < 2 s")
    for i, (k, c) in enumerate(zip(results["kitctl"], results["compose"]), 1):
        print(f"  round {i}: healthy {k[0]:.2f}s vs {c[0]:.2f}s, no-op {k[1]:.2f}s vs {c[1]:.2f}s")


if __name__ == "__main__":
    main()
