"""How long each xdist worker was busy, printed after the run: the suite's wall time is its busiest worker,
so this says where shortening a test shortens the run (the engine worker or the other)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

_busy: dict[str, float] = defaultdict(float)
_engine: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    node = getattr(report, "node", None)  # set by xdist on the controller; absent without -n
    worker = node.gateway.id if node is not None else "main"
    _busy[worker] += report.duration
    from tests.conftest import is_engine_test

    if is_engine_test(report.nodeid):
        _engine[worker] += report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _busy:
        return
    parts = [f"{w} {_busy[w]:,.0f} s (engine tests {_engine[w]:,.0f} s)" for w in sorted(_busy)]
    terminalreporter.write_line("busy time per worker: " + "; ".join(parts))
