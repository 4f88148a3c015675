"""Sites' grading metrics per month, computed once and reused (`grade_cache`, HQ migration 0032).

A month's ranking reads four months of orders, repeat buyers (each contact hashed), alerts and
complaints — seconds at a thousand sites. The metrics of each site and month are kept with when they
were computed and reused while fresh: `KIT_HQ_GRADE_CACHE_SECONDS` (300) for this month and the one
before, which still move, and `KIT_HQ_GRADE_CACHE_CLOSED_SECONDS` (3600) for older ones, which a late
refund or complaint can still reach. What HQ itself changes drops the rows it touches at once
(`invalidate`: a complaint received, an order a person decided). The score and grade are
never kept: they follow from the metrics with the configuration of the moment, so a new configuration
needs no invalidation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from hq.clock import aware, utcnow
from hq.models import GradeCache
from hq.site_metrics import FEW, metrics, month_bounds, previous_month

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hq.service import HQ


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _max_age(hq: "HQ", period: str, now: datetime) -> float:
    moving = {period_of(now), previous_month(period_of(now))}
    return hq.settings.grade_cache_seconds if period in moving else hq.settings.grade_cache_closed_seconds


def site_metrics(hq: "HQ", sites: list[str], period: str) -> dict[str, dict[str, Any]]:
    """Every metric of each of `sites` for `period`: fresh cached rows as they are, the rest computed and kept."""
    now = utcnow()
    oldest = now - timedelta(seconds=_max_age(hq, period, now))
    query = select(GradeCache.site_id, GradeCache.metrics, GradeCache.computed_at).where(GradeCache.period == period)
    if len(sites) <= FEW:
        query = query.where(GradeCache.site_id.in_(sites))
    wanted = set(sites)
    with hq.read() as conn:
        found = {r.site_id: r.metrics for r in conn.execute(query)
                 if r.site_id in wanted and aware(r.computed_at) > oldest}
    stale = [s for s in sites if s not in found]
    if stale:
        start, end = month_bounds(period)
        computed = metrics(hq, stale, start, end)
        _keep(hq, period, computed, now)
        found.update(computed)
    return {s: found[s] for s in sites}


def _keep(hq: "HQ", period: str, computed: dict[str, dict[str, Any]], now: datetime) -> None:
    rows = [{"period": period, "site_id": s, "metrics": m, "computed_at": now} for s, m in computed.items()]
    try:
        with hq.engine.begin() as conn:
            for i in range(0, len(rows), 500):
                chunk = rows[i:i + 500]
                conn.execute(delete(GradeCache).where(GradeCache.period == period,
                                                      GradeCache.site_id.in_([r["site_id"] for r in chunk])))
                conn.execute(insert(GradeCache), chunk)
    except IntegrityError:  # another worker kept the same rows a moment earlier: theirs stand
        pass


def invalidate(session: "Session", site: str, moment: datetime) -> None:
    """Drop a site's cached metrics of the month of `moment` and the month after (whose growth compares
    with it), in the caller's transaction — for changes HQ makes itself."""
    period = period_of(aware(moment))
    start, _ = month_bounds(period)
    after = period_of(start + timedelta(days=32))
    session.execute(delete(GradeCache).where(GradeCache.site_id == site, GradeCache.period.in_([period, after])))
