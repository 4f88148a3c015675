"""The operation log (`audit_log`) for the admin: filter by person, action and the site's days; CSV export.

Every change the site's staff, the agent and kitctl make is already written
there in the change's own transaction; this only reads it.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kitcore.export_archive import guard_formula
from sitedb.models import AuditEntry
from storefront.admin.health_view import plain_text
from storefront.admin.reports import parse_dates
from storefront.clock import as_utc, day_bounds
from storefront.i18n import known_label

SHOWN = 200
NAME = re.compile(r"^[A-Za-z0-9:._-]{1,64}\Z")  # actors (admin:<name>, agent, hq, kitctl) and action names
CSV_COLUMNS = ("id", "at", "actor", "action", "detail")


@dataclass
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    start: date | None = None
    end: date | None = None
    zone: str = "UTC"
    errors: dict[str, str] = field(default_factory=dict)

    def query(self) -> dict[str, str]:
        """The filter as query parameters (for the CSV link of the same selection)."""
        values = {"actor": self.actor, "action": self.action, "start": self.start, "end": self.end}
        return {k: str(v) for k, v in values.items() if v}


def parse_filter(params: dict[str, str], zone: str) -> AuditFilter:
    """The filter form, checked: a bad value is reported on its field (a message key) and nothing is searched."""
    flt = AuditFilter(zone=zone)
    for name in ("actor", "action"):
        raw = params.get(name, "").strip()
        if raw and not NAME.match(raw):
            flt.errors[name] = "err.audit_name"
        setattr(flt, name, raw or None)
    parse_dates(params, flt, "err.date")
    if flt.start and flt.end and flt.start > flt.end:
        flt.errors["end"] = "err.date_order"
    return flt


def _selected(flt: AuditFilter):  # type: ignore[no-untyped-def]
    stmt = select(AuditEntry)
    if flt.actor:
        stmt = stmt.where(AuditEntry.actor == flt.actor)
    if flt.action:
        stmt = stmt.where(AuditEntry.action == flt.action)
    if flt.start:
        stmt = stmt.where(AuditEntry.at >= day_bounds(flt.start, flt.zone))
    if flt.end:
        stmt = stmt.where(AuditEntry.at < day_bounds(flt.end + timedelta(days=1), flt.zone))
    return stmt


def entries(session: Session, flt: AuditFilter, limit: int = SHOWN) -> tuple[list[AuditEntry], int]:
    """The newest matching entries and how many match in all."""
    stmt = _selected(flt)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    return list(session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit))), total


def choices(session: Session) -> tuple[list[str], list[str]]:
    """The actors and actions the log holds, for the filter's lists."""
    actors = [a for (a,) in session.execute(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor))]
    actions = [a for (a,) in session.execute(select(AuditEntry.action).distinct().order_by(AuditEntry.action))]
    return actors, actions


def action_label(t: Callable[..., str], action: str) -> str:
    """The action in the page's language; an action the kit has no words for keeps its name."""
    if action.startswith("command_"):
        return t("audit.action.command", type=known_label(t, "command.", action.removeprefix("command_")))
    return known_label(t, "audit.action.", action)


def actor_label(t: Callable[..., str], actor: str) -> str:
    """`admin:alice` reads as alice; the agent, HQ and kitctl by name in the page's language."""
    if actor.startswith("admin:"):
        return actor.removeprefix("admin:")
    return known_label(t, "audit.actor.", actor)


def detail_text(t: Callable[..., str], detail: Any) -> str:
    """The entry's detail as `key: value; …` (booleans in the page's language), never a Python repr."""
    return plain_text(detail, t)


def export_csv(session: Session, flt: AuditFilter) -> Iterator[str]:
    """The matching entries, oldest first, as CSV (times in UTC, ISO 8601; detail as JSON); streamed."""
    import json

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield "\ufeff" + buf.getvalue()
    for entry in session.scalars(_selected(flt).order_by(AuditEntry.id).execution_options(yield_per=500)):
        buf.seek(0)
        buf.truncate()
        cells = (entry.id, as_utc(entry.at).isoformat(), entry.actor, entry.action,
                 json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, default=str))
        writer.writerow([guard_formula(str(c)) for c in cells])
        yield buf.getvalue()
