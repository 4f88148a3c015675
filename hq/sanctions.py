"""Timed sanctions: a suspension for N days, with a reason, that lifts itself when the time runs out.

The end is stored with the suspension (`sites.suspended_until`) and sent to
the site in the `suspend` command (`until`, Unix seconds), so the licensee sees
it. HQ lifts it: `lift_due` resumes every site whose suspension ended, exactly
as an operator's resume would (a `resume` command, an audit entry by "hq");
the app runs it every `sanction_check_seconds`. Until then the site stays
suspended: the moment is HQ's, never the site's clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hq.clock import aware, utcnow
from hq.errors import ApiError

if TYPE_CHECKING:
    from hq.service import HQ

MAX_DAYS = 3650
LIFTED_BY = "hq"  # the audit log's operator for a suspension that ran out


def suspension_end(days: int, now: datetime | None = None) -> datetime:
    """When a suspension of `days` days starting `now` ends (to the second)."""
    if not 1 <= days <= MAX_DAYS:
        raise ApiError(422, "invalid_request", f"days: must be between 1 and {MAX_DAYS}")
    return (now or utcnow()).replace(microsecond=0) + timedelta(days=days)


def is_over(until: datetime | None, now: datetime) -> bool:
    """A timed suspension is over at its end instant and after; an open-ended one never is."""
    return until is not None and aware(until) <= now


def suspend_for(hq: "HQ", operator: str, site_id: str, reason: str, days: int | None,
                now: datetime | None = None) -> dict[str, Any]:
    """Suspend until resumed (`days` None) or for `days` days."""
    from hq import commands, licences

    until = suspension_end(days, now) if days is not None else None
    return licences.suspend(hq, operator, site_id, reason, until=until)


def lift_due(hq: "HQ", now: datetime | None = None) -> list[str]:
    """Resume every suspended site whose time ran out by `now`; the sites lifted."""
    from hq import commands, licences
    from hq.models import Site

    moment = now or utcnow()
    with hq.read() as conn:
        due = list(conn.execute(select(Site.id).where(Site.status == "suspended", Site.suspended_until.is_not(None),
                                                      Site.suspended_until <= moment).order_by(Site.id)).scalars())
    lifted = []
    for site_id in due:
        with hq.session() as session:
            site = commands.lock_site(session, site_id)
            # re-checked under the lock: an operator may have resumed, revoked or re-suspended it meanwhile
            if site is None or site.status != "suspended" or not is_over(site.suspended_until, moment):
                continue
            licences.resume_locked(session, site, LIFTED_BY, why="suspension ended")
            lifted.append(site_id)
    return lifted
