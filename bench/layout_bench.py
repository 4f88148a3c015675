"""Start-up of this tree against another revision of the kit, in the same run.

A move of code between packages (issue 13: the kitcore kernel) must not make
the commands people wait on slower. Three figures, whole process, median of
alternating runs of the two trees:
  1. `kitctl --version`,
  2. `kitctl --help`,
  3. a no-op `kitctl up` of a deployed site (the bench stack of
     tests/deploy/stack.py, deployed once by this tree, then asked again by each).
The peer is the other revision, checked out into a temporary git worktree.

Run: python bench/layout_bench.py [--against REV] [--runs N]   (needs the engine and the kit images)
"""

from __future__ import annotations

import argparse
import os
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
DEFAULT_AGAINST = "cfbb23c"  # the last commit before the kernel package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(tree: Path, args: list[str]) -> float:
    """Seconds for `python -m kitctl ARGS` with `tree` first on the path; fails loudly."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kitctl", *args], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{tree}: kitctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def compare(trees: dict[str, Path], args: list[str], runs: int) -> dict[str, float]:
    """Median milliseconds per tree, the trees alternating so load drift hits both alike."""
    samples: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(runs):
        for name, tree in trees.items():
            samples[name].append(timed(tree, args) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=DEFAULT_AGAINST, help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import docker

    client = docker.from_env(timeout=300)
    build_web_image(client, WEB, "1.0")
    with tempfile.TemporaryDirectory(prefix="kitctl-layout-bench-") as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), args.against],
                       check=True, capture_output=True)
        site = Path(tmp) / "layoutbench"
        try:
            token, jwks = issue_test_licence(Path(tmp) / "hq", "layoutbench", None)
            write_site(site, SiteSpec(site.name, "Bench 商店", free_port(), WEB), token, jwks)
            timed(ROOT, ["up", "--site-dir", str(site)])
            trees = {"this tree": ROOT, args.against: other}
            rows = [
                ("kitctl --version", compare(trees, ["--version"], args.runs)),
                ("kitctl --help", compare(trees, ["--help"], args.runs)),
                ("no-op kitctl up", compare(trees, ["up", "--site-dir", str(site)], args.runs)),
            ]
        finally:
            subprocess.run([sys.executable, "-m", "kitctl", "down", "--site-dir", str(site), "--volumes", "--yes"],
                           cwd=ROOT, capture_output=True, timeout=300)
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], capture_output=True)
    report(rows, args.against, args.runs)


def report(rows: list[tuple[str, dict[str, float]]], against: str, runs: int) -> None:
    load = os.getloadavg()[0]
    print(f"start-up, this tree vs {against}, median of {runs} alternating runs "
          f"(load average {load:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'':<20}{'this tree':>11}{against:>12}{'ratio':>8}")
    for label, figures in rows:
        mine, theirs = figures["this tree"], figures[against]
        print(f"{label:<20}{mine:>9.0f}ms{theirs:>10.0f}ms{mine / theirs:>7.2f}x")


if __name__ == "__main__":
    main()
