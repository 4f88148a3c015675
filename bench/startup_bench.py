"""How fast `kitctl` starts: `--version`, `--help`, `up --help`, whole process, median of runs.

Peers in the same run: a bare `python -c pass` (the floor no Python CLI
beats) and, with `--against REV`, the same commands from another revision of
the kit (checked out into a temporary git worktree), the two trees
alternating so load drift hits both alike. Wall time and CPU (user+sys of
the child) are printed; CPU barely moves when other work shares the machine.
The children may write bytecode (PYTHONDONTWRITEBYTECODE is dropped), as
an install does: without it every import compiles its source, about 40 ms
more a run.

Usage: python bench/startup_bench.py [--runs N] [--against REV]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [["--version"], ["--help"], ["up", "--help"]]
COLD = "(first)"  # the help cache (kitctl.helpcache) empty: what the first `--help` after an install or edit costs
GOAL_MS = 150
WARM_CACHE = ""  # this run's cache directory (set in main)


def once(argv: list[str], tree: Path, cold: bool = False) -> tuple[float, float]:
    """(wall ms, CPU ms) of one process; fails loudly. `cold`: with an empty cache directory."""
    cache = tempfile.mkdtemp(prefix="kitctl-cold-", dir=WARM_CACHE) if cold else WARM_CACHE
    env = {**os.environ, "PYTHONPATH": str(tree), "XDG_CACHE_HOME": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed kit has its bytecode: the first run writes it
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, cwd=tree)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {tree}:\n{done.stderr.decode()[:500]}")
    return wall, ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000


def medians(trees: dict[str, Path], args: list[str], runs: int, cold: bool = False) -> dict[str, tuple[float, float]]:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for _ in range(runs):
        for name, tree in trees.items():
            samples[name].append(once([sys.executable, "-m", "kitctl", *args], tree, cold))
    return {name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--against", help="git revision to compare with in the same run (e.g. main)")
    args = parser.parse_args()
    global WARM_CACHE
    with tempfile.TemporaryDirectory(prefix="kitctl-startup-") as tmp:
        WARM_CACHE = str(Path(tmp) / "cache")
        os.mkdir(WARM_CACHE)
        trees = {"this tree": REPO}
        if args.against:
            other = Path(tmp) / "other"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(other), args.against],
                           check=True, capture_output=True)
            trees[args.against] = other
        try:
            load = os.getloadavg()[0]
            floor = statistics.median(once([sys.executable, "-c", "pass"], REPO)[0] for _ in range(args.runs))
            rows = [(" ".join(c), medians(trees, c, args.runs)) for c in COMMANDS]
            rows += [(f"{' '.join(c)} {COLD}", medians(trees, c, args.runs, cold=True)) for c in COMMANDS[1:]]
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(Path(tmp) / "other")],
                               capture_output=True)
    print(f"kitctl start-up, median of {args.runs} runs, load {load:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; python -c pass {floor:.0f} ms (goal: ≤ {GOAL_MS} ms)")
    for label, figures in rows:
        mine_wall, mine_cpu = figures["this tree"]
        line = f"  kitctl {label:<20} {mine_wall:6.0f} ms wall {mine_cpu:5.0f} ms CPU ({mine_wall / floor:4.1f}× bare python)"
        if args.against:
            their_wall, their_cpu = figures[args.against]
            line += (f"   {args.against}: {their_wall:6.0f} ms wall {their_cpu:5.0f} ms CPU"
                     f"   ratio {mine_wall / their_wall:.2f}× wall, {mine_cpu / their_cpu:.2f}× CPU")
        print(line)


if __name__ == "__main__":
    main()
