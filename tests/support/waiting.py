"""Polling for a condition in end-to-end tests, with the last failure in the message."""

from __future__ import annotations

import time
from typing import Any, Callable


def eventually(check: Callable[[], Any], timeout: float = 60, every: float = 1.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with the last error otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last failure
            last = exc
        time.sleep(every)
    raise AssertionError(f"{what} not reached within {timeout:.0f} s (last: {last!r})")
