"""The agent's health report (site_state.health) as rows a person reads: labels and values in the page's language.

The agent writes plain JSON values (booleans, counts, unix times, small dicts);
shown raw they read as Python (`True`, `None`, `{'status': ...}`). Keys the kit
knows get a label; an unknown key (a newer agent) keeps its name, its value still
formatted, never a repr.
"""

from __future__ import annotations

from typing import Any, Callable

from storefront import clock
from storefront.i18n import known_label

# key -> how its value reads: count, yes/no, a unix time, a word from a fixed set, or the licence as HQ sees it
KINDS: dict[str, str] = {
    "db": "word", "outbox_pending": "count", "outbox_review": "count", "outbox_alert": "yesno",
    "catalog_items": "count", "hq_link": "word", "hq_link_since": "time", "hq_reachable": "yesno",
    "hq_unreachable_since": "time", "hq_licence_view": "licence",
}


def health_rows(health: dict[str, Any] | None, t: Callable[..., str], zone: str) -> list[tuple[str, str]]:
    """(label, value) for each key the agent reported, known keys first in a fixed order."""
    health = health or {}
    known = [k for k in KINDS if k in health]
    other = sorted(k for k in health if k not in KINDS)
    return [(t(f"health.key.{k}") if k in KINDS else k, _value(health[k], KINDS.get(k, ""), t, zone))
            for k in known + other]


def _value(value: Any, kind: str, t: Callable[..., str], zone: str) -> str:
    if value is None or value == "":
        return "—"
    if kind == "time" and isinstance(value, (int, float)):
        return clock.local_unix(value, zone)
    if kind == "licence" and isinstance(value, dict):
        text = known_label(t, "licence.status.", str(value.get("status") or "unknown"))
        reason = value.get("reason")
        return text + (" " + t("notice.reason", reason=reason) if reason else "")
    if kind == "word" and isinstance(value, str):
        return known_label(t, "health.word.", value)
    return plain_text(value, t)


def plain_text(value: Any, t: Callable[..., str]) -> str:
    """Any JSON value as text: yes/no for booleans, `key: value` pairs for objects, commas for lists."""
    if isinstance(value, bool):
        return t("common.yes") if value else t("common.no")
    if value is None:
        return "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {plain_text(v, t)}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(plain_text(v, t) for v in value)
    return str(value)
