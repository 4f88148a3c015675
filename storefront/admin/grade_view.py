"""HQ's grade of this site as the admin's grade page shows it (the agent's copy in `site_grade`).

HQ's answer is kept whole; this module turns it into rows a person reads in the page's language:
each metric's value beside the two points of its scale (worst → 0, best → 1) and its weight, and
what would raise the grade — per metric the value that alone reaches the next grade's line, or the
points it could add at its best when it alone cannot. Unknown metric names (a newer HQ) keep their name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Connection, select

from sitedb.tables import site_grade
from storefront.i18n import known_label
from storefront.money import format_money

PERCENT = ("repurchase_rate", "rejection_rate", "review_rate", "refund_rate", "uptime", "sync_health", "growth")
LOWER_IS_BETTER = ("rejection_rate", "review_rate", "refund_rate")


@dataclass(frozen=True)
class MetricRow:
    name: str
    label: str
    value: str
    worst: str
    best: str
    weight: str


@dataclass(frozen=True)
class Step:
    metric: str
    text: str
    alone: bool


@dataclass(frozen=True)
class GradeView:
    period: str
    grade: str
    score: str
    trend: list[str]
    lines: list[tuple[str, str]]
    metrics: list[MetricRow]
    next_grade: str | None
    points_needed: str
    steps: list[Step]
    fetched_at: Any


def load(conn: Connection, t: Callable[..., str]) -> GradeView | None:
    """The copied grade, formatted; None while the agent has not copied one yet."""
    row = conn.execute(select(site_grade).where(site_grade.c.id == 1)).first()
    if row is None:
        return None
    detail: dict[str, Any] = row.detail or {}
    metrics: dict[str, Any] = detail.get("metrics") or {}
    scales: dict[str, dict[str, float]] = detail.get("scales") or {}
    plan: dict[str, Any] = detail.get("next") or {}
    rows = [MetricRow(name, _label(t, name), value_text(name, metrics.get(name), t),
                      value_text(name, s.get("worst"), t), value_text(name, s.get("best"), t), f"{s.get('weight', 0):g}")
            for name, s in scales.items()]
    steps = [Step(s["metric"], _step_text(s, t), bool(s.get("alone"))) for s in plan.get("steps") or []]
    return GradeView(period=row.period, grade=row.grade, score=f"{row.score:.2f}", trend=list(detail.get("trend") or []),
                     lines=[(k, f"{v:g}") for k, v in (detail.get("grades") or {}).items()], metrics=rows,
                     next_grade=plan.get("next_grade"), points_needed=f"{plan.get('points_needed', 0):.2f}",
                     steps=steps, fetched_at=row.fetched_at)


def value_text(name: str, value: Any, t: Callable[..., str]) -> str:
    """A metric's value for people: money for GMV, a percentage for rates and shares, a count for orders."""
    if value is None:
        return t("grade.undefined")
    if name == "gmv_cents":
        return format_money(int(value), "CNY")
    if name in PERCENT:
        text = f"{100 * float(value):.2f}".rstrip("0").rstrip(".")
        return ("+" if name == "growth" and value > 0 else "") + text + "%"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def _label(t: Callable[..., str], name: str) -> str:
    return known_label(t, "grade.metric.", name)


def _step_text(step: dict[str, Any], t: Callable[..., str]) -> str:
    name = step["metric"]
    verb = "grade.lower" if name in LOWER_IS_BETTER else "grade.raise"
    move = t(verb, metric=_label(t, name), value=value_text(name, step.get("value"), t),
             target=value_text(name, step.get("target"), t))
    if step.get("alone"):
        return move + t("grade.alone")
    return move + t("grade.not_alone", points=f"{step.get('points', 0):.2f}")
