"""A site's health as readable badges for the fleet page (never raw `key: value` text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Badge:
    text: str
    level: str  # ok | warn | crit | info


def badges(health: dict[str, Any], alerts: list[dict[str, Any]], backlog_alert: int) -> list[Badge]:
    """Open alerts first (the words an operator acts on), then what the site last reported."""
    out = [Badge(a["summary"], "crit" if a["severity"] == "critical" else "warn") for a in alerts]
    alerted = {a["kind"] for a in alerts}
    if not health:
        return out or [Badge("no report yet", "info")]
    db = health.get("db")
    if db == "ok":
        out.append(Badge("database ok", "ok"))
    elif db is not None and "db_unhealthy" not in alerted:
        out.append(Badge(f"database {str(db)[:20]}", "crit"))
    pending = health.get("outbox_pending")
    if isinstance(pending, int) and "outbox_backlog" not in alerted:
        out.append(Badge(f"{pending:,} orders waiting" if pending else "outbox empty",
                         "warn" if pending >= backlog_alert else "ok"))
    review = health.get("outbox_review")
    if isinstance(review, int) and review:
        out.append(Badge(f"{review:,} in review", "info"))
    items = health.get("catalog_items")
    if isinstance(items, int):
        out.append(Badge(f"{items:,} items", "ok" if items else "warn"))
    if health.get("hq_reachable") is False:
        out.append(Badge("cannot reach HQ", "warn"))
    return out
