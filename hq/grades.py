"""Grades and ranking of the fleet for a month, the suggestions they lead to, and acting on one.

A period is a calendar month (`YYYY-MM`, UTC). The ranking sorts sites by score (hq.grading
over hq.site_metrics), with each site's grades of the three months before as its trend.
Suggestions follow from the grades in a row (docs/partners.md): `upgrade` to the next tier
after `upgrade_after` A's, `suspend` for `suspend_days` after `suspend_after` D's, `warn` on
a D before that. One action carries a suggestion out, audited; it is recomputed at that
moment, so a stale page cannot act on what no longer holds.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select

from hq import audit, grade_cache
from hq.clock import utcnow
from hq.errors import ApiError
from hq.grading import GradingConfig, grade_of, next_line, score, to_raise
from hq.models import AuditEvent, GradingSettings, Licence, Site
from hq.site_metrics import month_bounds, previous_month
from kitcore.licence.tiers import TIERS

if TYPE_CHECKING:
    from hq.service import HQ

PERIOD_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"  # pydantic's too: `$` is the very end; fullmatch here
TREND = 3
CSV_COLUMNS = ("rank", "site", "tier", "status", "grade", "score", "gmv_cents", "growth", "orders", "buyers",
               "repurchase_rate", "rejection_rate", "review_rate", "refund_rate", "uptime", "sync_health", "complaints", "trend",
               "suggestion")


def current_period(now: datetime | None = None) -> str:
    moment = now or utcnow()
    return f"{moment.year:04d}-{moment.month:02d}"


def check_period(period: str) -> str:
    if not isinstance(period, str) or not re.fullmatch(PERIOD_PATTERN, period):
        raise ApiError(422, "invalid_request", "period must be a month: YYYY-MM")
    return period


def config(hq: "HQ") -> GradingConfig:
    with hq.session() as session:
        row = session.get(GradingSettings, 1)
        return GradingConfig.model_validate(row.config) if row is not None else GradingConfig()


def set_config(hq: "HQ", operator: str, data: dict[str, Any]) -> GradingConfig:
    """Replace the grading configuration (validated whole; a bad one changes nothing)."""
    try:
        new = GradingConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ApiError(422, "invalid_request",
                       f"{'.'.join(str(p) for p in first['loc']) or 'config'}: {first['msg']}") from None
    with hq.session() as session:
        row = session.get(GradingSettings, 1)
        if row is None:
            session.add(GradingSettings(id=1, config=new.model_dump(), updated_by=operator, updated_at=utcnow()))
        else:
            row.config, row.updated_by, row.updated_at = new.model_dump(), operator, utcnow()
        audit.record(session, operator, "grading.config", None, config=new.model_dump())
    return new


def _sites(hq: "HQ", end: datetime) -> dict[str, dict[str, Any]]:
    with hq.read() as conn:
        rows = conn.execute(select(Site.id, Site.status, Licence.tier).join(Licence, Licence.jti == Site.current_jti)
                            .where(Site.status != "revoked", Site.created_at < end).order_by(Site.id))
        return {r.id: {"site": r.id, "status": r.status, "tier": r.tier} for r in rows}


def _graded(hq: "HQ", sites: list[str], period: str, cfg: GradingConfig) -> dict[str, dict[str, Any]]:
    out = {}
    for site, m in grade_cache.site_metrics(hq, sites, period).items():
        points = score(m, cfg)
        out[site] = {"metrics": m, "score": points, "grade": grade_of(points, cfg), "raise": to_raise(m, cfg)}
    return out


def ranking(hq: "HQ", period: str | None = None) -> list[dict[str, Any]]:
    """The fleet for `period` (default: this month), best first, with trend and suggestion."""
    period = check_period(period or current_period())
    cfg = config(hq)
    _, end = month_bounds(period)
    sites = _sites(hq, end)
    now = _graded(hq, list(sites), period, cfg)
    earlier, p = [], period
    for _ in range(TREND):
        p = previous_month(p)
        earlier.insert(0, _graded(hq, list(sites), p, cfg))
    acted = _acted(hq, period)
    rows = []
    for site, info in sites.items():
        trend = [e[site]["grade"] for e in earlier] + [now[site]["grade"]]
        rows.append({**info, "period": period, **now[site], "trend": trend,
                     "suggestion": None if site in acted else suggestion(info, trend, cfg)})
    rows.sort(key=lambda r: (-r["score"], r["site"]))
    for i, row in enumerate(rows, start=1):
        row["rank"] = i
    return rows


def own_grade(hq: "HQ", site: str, period: str | None = None) -> dict[str, Any]:
    """One site's grade as its own admin shows it: the grade, score and trend, each metric beside its
    configured scale, the grade lines, and what would raise it (hq.grading.next_line). Only that site is read."""
    period = check_period(period or current_period())
    cfg = config(hq)
    now = _graded(hq, [site], period, cfg)[site]
    trend, p = [now["grade"]], period
    for _ in range(TREND):
        p = previous_month(p)
        trend.insert(0, _graded(hq, [site], p, cfg)[site]["grade"])
    return {"site": site, "period": period, "grade": now["grade"], "score": now["score"], "trend": trend,
            "metrics": now["metrics"], "scales": {n: s.model_dump() for n, s in cfg.scales.items()},
            "grades": dict(cfg.grades), "next": next_line(now["metrics"], cfg),
            "computed_at": utcnow().isoformat()}


def _acted(hq: "HQ", period: str) -> set[str]:
    """Sites a suggestion was carried out for in `period`: one action per site and period (no double upgrade)."""
    with hq.read() as conn:
        rows = conn.execute(select(AuditEvent.site_id, AuditEvent.detail).where(AuditEvent.action.like("grading.%"),
                                                                                 AuditEvent.site_id.is_not(None)))
        return {site for site, detail in rows if (detail or {}).get("period") == period}


def suggestion(site: dict[str, Any], trend: list[str], cfg: GradingConfig) -> dict[str, Any] | None:
    """What HQ could do about a site, from its grades in a row (the last is this period's)."""
    if site["status"] != "active":
        return None
    tiers = list(TIERS)
    if trend[-cfg.upgrade_after:] == ["A"] * cfg.upgrade_after and site["tier"] != tiers[-1]:
        return {"action": "upgrade", "tier": tiers[tiers.index(site["tier"]) + 1],
                "why": f"graded A {cfg.upgrade_after} periods in a row"}
    if trend[-cfg.suspend_after:] == ["D"] * cfg.suspend_after:
        return {"action": "suspend", "days": cfg.suspend_days, "why": f"graded D {cfg.suspend_after} periods in a row"}
    if trend[-1] == "D":
        return {"action": "warn", "why": "graded D this period"}
    return None


def act(hq: "HQ", operator: str, site: str, period: str | None = None) -> dict[str, Any]:
    """Carry out the site's suggestion for `period` as it stands now; 409 when there is none."""
    rows = {r["site"]: r for r in ranking(hq, period)}
    row = rows.get(site)
    if row is None:
        raise ApiError(404, "not_found", f"site {site!r} is not graded (unknown, revoked or not licensed yet)")
    todo = row["suggestion"]
    if todo is None:
        raise ApiError(409, "nothing_to_do", f"site {site!r}: grade {row['grade']}, nothing suggested")
    reason = f"grade {row['grade']} for {row['period']}: {todo['why']}"
    if todo["action"] == "upgrade":
        from hq import licences

        licences.upgrade(hq, operator, site, tier=todo["tier"])
    elif todo["action"] == "suspend":
        from hq import sanctions

        sanctions.suspend_for(hq, operator, site, reason, todo["days"])
    with hq.session() as session:
        audit.record(session, operator, f"grading.{todo['action']}", site, period=row["period"], grade=row["grade"],
                     score=row["score"], why=todo["why"])
    return {"site": site, "period": row["period"], "grade": row["grade"], "done": todo}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The ranking as CSV (one row per site; rates as fractions, GMV in cents)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        m = r["metrics"]
        writer.writerow([r["rank"], r["site"], r["tier"], r["status"], r["grade"], f"{r['score']:.2f}",
                         m["gmv_cents"], _num(m["growth"]), m["orders"], m["buyers"], _num(m["repurchase_rate"]),
                         _num(m["rejection_rate"]), _num(m["review_rate"]), _num(m["refund_rate"]),
                         _num(m["uptime"]), _num(m["sync_health"]), m["complaints"], ">".join(r["trend"]),
                         r["suggestion"]["action"] if r["suggestion"] else ""])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
