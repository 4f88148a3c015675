"""Database failures as metrics: every error counted by operation, timeouts counted apart.

A timeout (a statement or lock timeout, a connect timeout, a query cancelled by the
server) says the database is there but too slow; other errors usually say it is down.
The alert rules tell the two apart, so the classification lives in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics

# SQLSTATEs of a cancelled statement (statement_timeout) and a lock wait that timed out.
TIMEOUT_SQLSTATES = frozenset({"57014", "55P03"})


def is_timeout(exc: BaseException) -> bool:
    """Whether `exc` (a SQLAlchemy DBAPIError, or the driver's own error) is a timeout."""
    inner = getattr(exc, "orig", None) or exc
    if isinstance(inner, TimeoutError):
        return True
    if getattr(inner, "sqlstate", None) in TIMEOUT_SQLSTATES or getattr(inner, "pgcode", None) in TIMEOUT_SQLSTATES:
        return True
    text = str(inner).lower()
    return "timeout expired" in text or "timed out" in text or "canceling statement due to" in text


def record(metrics: "AgentMetrics", operation: str, exc: BaseException) -> None:
    """Count one database failure of `operation` (one of metrics.DB_OPERATIONS)."""
    metrics.db_errors.labels(operation).inc()
    if is_timeout(exc):
        metrics.db_timeouts.labels(operation).inc()
