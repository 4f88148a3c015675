"""A no-op `kitctl up` over ssh:// against the same on the local socket, in the same run.

Two copies of tests/deploy/stack.py's stack (kitctl/db, the stand-in web app,
kitctl/proxy): one deployed through the unix socket, one through the shared
sshd (the same engine, reached as a remote host would be). Once both are up,
rounds alternate a second `kitctl up` on each (nothing to do) and time the
whole command. Goal: over SSH within 1.5x the local one.

Run: python bench/ssh_noop_bench.py [--rounds N]   (needs the engine, the sshd and the kit images)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.deploy_bench import WEB, free_port, run  # noqa: E402
from tests.deploy.stack import SiteSpec, build_web_image, issue_test_licence, write_site  # noqa: E402

SSH_TARGET = f"ssh://root@127.0.0.1:{os.environ.get('KITCTL_SSHD_PORT', '2222')}"


def up(site: Path, host: list[str]) -> float:
    return run([sys.executable, "-m", "kitctl", "up", "--site-dir", str(site), *host], ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import docker

    build_web_image(docker.from_env(timeout=300), WEB, "1.0")
    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="kitctl-bench-") as tmp:
        token, jwks = issue_test_licence(Path(tmp) / "hq", "bench", None)
        remote_dir = f"/tmp/kitctl-bench-remote-{tag}"
        hosts = {"local": [], "ssh": ["--docker-host", SSH_TARGET, "--remote-dir", remote_dir]}
        sites = {name: Path(tmp) / f"benchnoop{name}{tag}" for name in hosts}
        for name, site in sites.items():
            write_site(site, SiteSpec(site.name, "Bench 商店", free_port(), WEB), token, jwks)
        times: dict[str, list[float]] = {name: [] for name in hosts}
        try:
            for name in hosts:
                up(sites[name], hosts[name])  # the cold deploy, not timed
            for _ in range(args.rounds):
                for name in hosts:
                    times[name].append(up(sites[name], hosts[name]))
        finally:
            for name in hosts:
                run([sys.executable, "-m", "kitctl", "down", "--site-dir", str(sites[name]), "--volumes", "--yes",
                     *hosts[name]], ROOT)
    report(times)


def report(times: dict[str, list[float]]) -> None:
    local, ssh = statistics.median(times["local"]), statistics.median(times["ssh"])
    print(f"no-op kitctl up, median of {len(times['local'])} rounds "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  local socket {local:.2f}s   ssh:// {ssh:.2f}s   ratio {ssh / local:.2f}x   goal ≤ 1.5x")
    for name in times:
        print(f"  {name}: " + ", ".join(f"{t:.2f}" for t in times[name]))


if __name__ == "__main__":
    main()
