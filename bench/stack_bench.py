"""The real stack (db, storefront, agent, proxy from the kit's images): `kitctl up` to all healthy, and a colour
change under a steady load through the proxy, counting every failed request.

Figures printed (issue 24): command → all healthy as kitctl reports it (its health gate: every service's own
healthcheck passed) and as the engine reports it (`docker ps` says healthy), per-service times from kitctl's
output, and for the colour change the same two figures plus requests sent / failed during it. No peer: the
goal is absolute (≤ 12 s, ≤ 8 s and 0 failed).

Run: python bench/stack_bench.py [--rounds N] [--clients 4]   (needs the engine and the kit's images, built)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deploy.stack import LOGO_PNG, issue_test_licence  # noqa: E402
from tests.support.steady_load import SteadyLoad  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kitctl(*args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kitctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"kitctl {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started, done.stdout


def engine_healthy(project: str, since: float, deadline: float = 120) -> float:
    """Seconds from `since` until the engine reports every container of the project healthy."""
    import docker

    client = docker.from_env()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = client.api.containers(filters={"label": f"com.docker.compose.project={project}"})
        if found and all("(healthy)" in c["Status"] for c in found):
            return time.monotonic() - since
        time.sleep(0.1)
    raise SystemExit(f"{project}: the engine did not report all healthy within {deadline}s")


def service_times(output: str) -> dict[str, float]:
    """kitctl's per-service lines: `<service> … healthy (<seconds>s)` or similar."""
    found = {}
    for line in output.splitlines():
        m = re.search(r"\b(db|storefront|agent|proxy)\b.*?\b(healthy|completed)\b.*?([0-9]+\.[0-9]+)\s*s", line)
        if m:
            found[m.group(1)] = float(m.group(3))
    return found


def site_args(tmp: Path, project: str, port: int) -> list[str]:
    """`kitctl up` flags for a fresh site of the kit's images (a licence with no registry: the local images)."""
    token, jwks = issue_test_licence(tmp / "hq", project, None)
    (tmp / "licence.jwt").write_text(token)
    (tmp / "hq-keys.json").write_text(json.dumps(jwks))
    (tmp / "logo.png").write_bytes(LOGO_PNG)
    return ["--licence", f"@{tmp / 'licence.jwt'}", "--hq-keys", str(tmp / "hq-keys.json"), "--name", "Bench 商店",
            "--domain", "localhost", "--logo", str(tmp / "logo.png"), "--site-dir", str(tmp / project),
            "--http-port", str(port), "--https-port", str(free_port()), "--metrics-port", str(free_port()),
            "--tls", "off"]


def down(site_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "kitctl", "down", "--site-dir", str(site_dir), "--volumes", "--yes"],
                   cwd=ROOT, capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def one_round(tmp: Path, clients: int) -> dict[str, object]:
    project, port = f"stk{uuid.uuid4().hex[:6]}", free_port()
    site_dir = tmp / project
    result: dict[str, object] = {}
    try:
        started = time.monotonic()
        result["up"], out = kitctl("up", *site_args(tmp, project, port))
        result["up_engine"] = engine_healthy(f"kit-{project}", started)
        result["up_services"] = service_times(out)
        time.sleep(2)
        with SteadyLoad(port, clients) as load:
            time.sleep(1)
            started = time.monotonic()
            result["colour"], out = kitctl("up", "--site-dir", str(site_dir), "--primary-color", "#ff3366")
            result["colour_engine"] = engine_healthy(f"kit-{project}", started)
            result["colour_services"] = service_times(out)
            result["colour_output"] = out
            time.sleep(1)
        result["sent"], result["failed"], result["why"] = load.sent, load.failed, sorted(set(load.failures))
        result["when"] = load.when
    finally:
        down(site_dir)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--show-output", action="store_true", help="print kitctl's output of the colour change")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="kitctl-stack-") as tmp:
            rounds.append(one_round(Path(tmp), args.clients))
    print(f"real stack, median of {len(rounds)} rounds (load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs)")
    for key, goal in (("up", 12.0), ("colour", 8.0)):
        own, engine = (statistics.median(float(r[k]) for r in rounds) for k in (key, f"{key}_engine"))
        print(f"  {key:<7} command → healthy (kitctl's gate) {own:6.2f}s   engine reports healthy {engine:6.2f}s"
              f"   goal ≤ {goal:.0f}s {'met' if own <= goal else 'NOT met'}")
    for i, r in enumerate(rounds, 1):
        print(f"  round {i}: up {r['up']:.2f}s (engine {r['up_engine']:.2f}s) {r['up_services']}; colour "
              f"{r['colour']:.2f}s (engine {r['colour_engine']:.2f}s) {r['colour_services']}; during the colour "
              f"change {r['sent']} requests, {r['failed']} failed {r['why']}")
        if args.show_output:
            print(r["colour_output"])
        if r["when"]:
            print(f"  round {i}: failures (seconds since the load began; the change began at 1 s): {r['when']}")


if __name__ == "__main__":
    main()
