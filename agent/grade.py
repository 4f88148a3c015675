"""HQ's grade of this site, copied into the site database for the admin's grade page.

The storefront never calls HQ: the agent asks HQ (`GET /v1/grade`, its licence token; HQ answers
for this site only) at most every `EVERY` seconds and keeps one row (`site_grade`), replaced whole.
A grade moves with a month's orders, so a quarter of an hour late is soon enough, and a fleet of
sites asking no more often keeps HQ's work small.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from agent.hq_client import plain
from agent.state import as_utc, utcnow
from sitedb.tables import site_grade

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from agent.hq_client import HQClient

EVERY = 900.0


@dataclass
class GradeOutcome:
    copied: bool
    contacted_hq: bool


def pull_once(engine: "Engine", client: "HQClient", every: float = EVERY) -> GradeOutcome:
    """Copy HQ's grade when the copy is older than `every` seconds (or missing); HQ errors propagate."""
    with engine.connect() as conn:
        fetched = conn.execute(select(site_grade.c.fetched_at).where(site_grade.c.id == 1)).scalar()
    if fetched is not None and as_utc(fetched) > utcnow() - timedelta(seconds=every):
        return GradeOutcome(copied=False, contacted_hq=False)
    info = client.own_grade()
    detail = plain(info)
    with engine.begin() as conn:
        conn.execute(delete(site_grade))
        conn.execute(insert(site_grade).values(id=1, period=info.period, grade=info.grade, score=info.score,
                                               detail=detail, fetched_at=utcnow()))
    return GradeOutcome(copied=True, contacted_hq=True)

