"""Structured logs: one JSON object per line on stderr, for `docker logs` and collectors."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", …extra fields}`; extras must never hold secrets."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, default=str, ensure_ascii=False)


class RecentLines(logging.Handler):
    """The last log lines, kept in memory for a support bundle HQ may ask for (agent.support)."""

    def __init__(self, capacity: int = 1000) -> None:
        super().__init__()
        from collections import deque

        self.lines: "deque[str]" = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a log line must never break the agent
            pass


RECENT = RecentLines()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    RECENT.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler, RECENT]
    root.setLevel(level.upper())
    for noisy in ("alembic",):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class LogOnce:
    """Log a recurring condition once when it starts and once when it clears.

    An HQ outage or a bad command repeated by every heartbeat is one log line,
    not thousands; the metrics count every occurrence.
    """

    def __init__(self, logger: logging.Logger, limit: int = 1024) -> None:
        self.logger = logger
        self.active: dict[str, str] = {}
        self.limit = limit
        self.lock = threading.Lock()

    def problem(self, key: str, msg: str, **fields: Any) -> bool:
        """Log `msg` unless `key` is already active; True when it was logged."""
        with self.lock:
            if key in self.active:
                return False
            if len(self.active) >= self.limit:
                self.active.pop(next(iter(self.active)))
            self.active[key] = msg
        self.logger.warning(msg, extra=fields)
        return True

    def resolved(self, key: str, msg: str, **fields: Any) -> None:
        with self.lock:
            was = self.active.pop(key, None)
        if was is not None:
            self.logger.info(msg, extra=fields)

    def resolved_prefix(self, prefix: str, msg: str, **fields: Any) -> None:
        with self.lock:
            keys = [k for k in self.active if k.startswith(prefix)]
            for k in keys:
                self.active.pop(k)
        if keys:
            self.logger.info(msg, extra=fields)
