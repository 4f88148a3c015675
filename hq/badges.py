"""A site's health as readable badges for the fleet page (never raw `key: value` text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Badge:
    text: str
    level: str  # ok | warn | crit | info


def badges(health: dict[str, Any], alerts: list[dict[str, Any]], backlog_alert: int,
           t: Callable[..., str] | None = None) -> list[Badge]:
    """Open alerts first (the words an operator acts on), then what the site last reported, in `t`'s language."""
    if t is None:
        from hq.i18n import t as translator

        t = translator("en")
    out = [Badge(a["summary"], "crit" if a["severity"] == "critical" else "warn") for a in alerts]
    alerted = {a["kind"] for a in alerts}
    if not health:
        return out or [Badge(t("badge.no_report"), "info")]
    db = health.get("db")
    if db == "ok":
        out.append(Badge(t("badge.db_ok"), "ok"))
    elif db is not None and "db_unhealthy" not in alerted:
        out.append(Badge(t("badge.db", state=str(db)[:20]), "crit"))
    pending = health.get("outbox_pending")
    if isinstance(pending, int) and "outbox_backlog" not in alerted:
        out.append(Badge(t("badge.waiting", n=f"{pending:,}") if pending else t("badge.outbox_empty"),
                         "warn" if pending >= backlog_alert else "ok"))
    review = health.get("outbox_review")
    if isinstance(review, int) and review:
        out.append(Badge(t("badge.in_review", n=f"{review:,}"), "info"))
    items = health.get("catalog_items")
    if isinstance(items, int):
        out.append(Badge(t("badge.items", n=f"{items:,}"), "ok" if items else "warn"))
    if health.get("hq_reachable") is False:
        out.append(Badge(t("badge.no_hq"), "warn"))
    return out
