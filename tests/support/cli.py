"""Run `kitctl` as a person does: a fresh process, its output captured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def kitctl(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "kitctl", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError(f"kitctl {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done
