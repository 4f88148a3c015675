"""How fast `kitctl` starts: `--version` and `--help`, whole process, median of runs.

Peer: a bare `python -c pass` in the same run, the floor no Python CLI beats.
Usage: python bench/startup_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def median_ms(argv: list[str], runs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    py = sys.executable
    floor = median_ms([py, "-c", "pass"], runs)
    version = median_ms([py, "-m", "kitctl", "--version"], runs)
    help_ = median_ms([py, "-m", "kitctl", "--help"], runs)
    print(f"python -c pass       {floor:7.1f} ms")
    print(f"kitctl --version     {version:7.1f} ms  ({version / floor:.1f}x bare python; goal < 150 ms)")
    print(f"kitctl --help        {help_:7.1f} ms  ({help_ / floor:.1f}x bare python)")


if __name__ == "__main__":
    main()
