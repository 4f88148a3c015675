"""HQ watches its fleet: a site gone silent, an unhealthy database, a stale sync, an outbox backlog.

Each round (`watch`, every `alert_check_seconds` in every worker) reads the sites' last
heartbeat and health, opens an alert for each problem that has none open, marks the open
ones still seen, and resolves the ones that went away. The database keeps it right with
several workers: a partial unique index allows one open alert per (site, kind), and a
notification is claimed by setting `notified_at` / `resolved_notified_at` where it is
still empty, so each opening and each resolution is sent once (`hq.notify`).
Resolved alerts stay as history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from hq.clock import aware, iso, utcnow
from hq.models import FleetAlert, Site

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

    from hq.service import HQ

log = logging.getLogger("hq.fleet_alerts")
KINDS = ("silent", "db_unhealthy", "sync_stale", "outbox_backlog")
SEVERITY = {"silent": "critical", "db_unhealthy": "critical", "sync_stale": "warning", "outbox_backlog": "warning"}


@dataclass(frozen=True)
class Problem:
    site: str
    kind: str
    summary: str


def problems_of(site_id: str, last_heartbeat: datetime | None, health: dict[str, Any] | None, now: datetime,
                silent_after: timedelta, sync_stale: timedelta, backlog: int) -> list[Problem]:
    """What is wrong with one site, from its last heartbeat and the health it reported."""
    out: list[Problem] = []
    if last_heartbeat is None:
        return out  # licensed but not launched yet: nothing to watch
    quiet = now - aware(last_heartbeat)
    if quiet > silent_after:
        out.append(Problem(site_id, "silent", f"no heartbeat for {_duration(quiet)}"))
    h = health or {}
    if h.get("db") not in (None, "ok", "unknown"):
        out.append(Problem(site_id, "db_unhealthy", f"database {str(h.get('db'))[:40]}"))
    synced = _timestamp(h.get("last_sync_at"))
    if synced is not None and now - synced > sync_stale:
        out.append(Problem(site_id, "sync_stale", f"catalog synced {_duration(now - synced)} ago"))
    pending = h.get("outbox_pending")
    if (isinstance(pending, int) and pending >= backlog) or h.get("outbox_alert") is True:
        out.append(Problem(site_id, "outbox_backlog", f"{pending} orders waiting to reach HQ"))
    return out


def current_problems(hq: "HQ", now: datetime) -> list[Problem]:
    from hq.fleet_stats import silent_after

    s = hq.settings
    with hq.read() as conn:
        rows = conn.execute(select(Site.id, Site.last_heartbeat_at, Site.health).where(Site.status != "revoked"))
        return [p for row in rows for p in problems_of(row.id, row.last_heartbeat_at, row.health, now, silent_after(hq),
                                                       timedelta(seconds=s.sync_stale_seconds), s.outbox_backlog_alert)]


def evaluate(hq: "HQ", now: datetime | None = None) -> None:
    """One round: open, keep and resolve alerts to match what the sites show now."""
    moment = now or utcnow()
    seen = {(p.site, p.kind): p for p in current_problems(hq, moment)}
    with hq.session() as session:
        open_alerts = {(a.site_id, a.kind): a for a in session.scalars(
            select(FleetAlert).where(FleetAlert.state == "firing"))}
        for key, alert in open_alerts.items():
            if key in seen:
                alert.last_seen_at, alert.summary = moment, seen[key].summary
            else:
                alert.state, alert.resolved_at = "resolved", moment
    for key, problem in seen.items():
        if key not in open_alerts:
            _open(hq, problem, moment)


def _open(hq: "HQ", problem: Problem, now: datetime) -> None:
    try:
        with hq.session() as session:
            session.add(FleetAlert(site_id=problem.site, kind=problem.kind, state="firing",
                                   severity=SEVERITY[problem.kind], summary=problem.summary[:300], opened_at=now,
                                   last_seen_at=now))
    except IntegrityError:  # another worker opened it in the same round
        pass


def claim_notifications(hq: "HQ") -> list[dict[str, Any]]:
    """Alerts whose opening or resolution is not sent yet, claimed by this worker (each goes out once)."""
    now = utcnow()
    out: list[dict[str, Any]] = []
    with hq.session() as session:
        for alert in list(session.scalars(select(FleetAlert).where(
                ((FleetAlert.state == "firing") & FleetAlert.notified_at.is_(None))
                | ((FleetAlert.state == "resolved") & FleetAlert.resolved_notified_at.is_(None))))):
            column = FleetAlert.notified_at if alert.state == "firing" else FleetAlert.resolved_notified_at
            if alert.state == "resolved" and alert.notified_at is None:
                # it came and went before anyone was told: mark both, send nothing
                session.execute(update(FleetAlert).where(FleetAlert.id == alert.id)
                                .values(notified_at=now, resolved_notified_at=now))
                continue
            claimed = session.execute(update(FleetAlert).where(FleetAlert.id == alert.id, column.is_(None))
                                      .values({column.key: now})).rowcount
            if claimed:
                out.append(alert_json(alert))
    return out


def release(hq: "HQ", alert: dict[str, Any]) -> None:
    """Sending failed: leave it unclaimed so the next round tries again."""
    column = FleetAlert.notified_at if alert["state"] == "firing" else FleetAlert.resolved_notified_at
    with hq.session() as session:
        session.execute(update(FleetAlert).where(FleetAlert.id == alert["id"]).values({column.key: None}))


def watch(hq: "HQ") -> int:
    """One round of evaluation and notification; returns how many notifications went out."""
    from hq import notify

    evaluate(hq)
    return notify.deliver(hq.settings, claim_notifications(hq), lambda alert: release(hq, alert))


def alert_json(a: "FleetAlert | Row[Any]") -> dict[str, Any]:
    return {"id": a.id, "site": a.site_id, "kind": a.kind, "state": a.state, "severity": a.severity,
            "summary": a.summary, "opened_at": iso(a.opened_at), "last_seen_at": iso(a.last_seen_at),
            "resolved_at": iso(a.resolved_at)}


SHOWN = (FleetAlert.id, FleetAlert.site_id, FleetAlert.kind, FleetAlert.state, FleetAlert.severity,
         FleetAlert.summary, FleetAlert.opened_at, FleetAlert.last_seen_at, FleetAlert.resolved_at)


def listing(hq: "HQ", history: int = 50) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(open alerts, the most recent resolved ones) for the fleet page: plain rows on a read connection
    (no ORM objects, no write transaction), as every page load runs it."""
    with hq.read() as conn:
        firing = [alert_json(a) for a in conn.execute(
            select(*SHOWN).where(FleetAlert.state == "firing").order_by(FleetAlert.opened_at))]
        resolved = [alert_json(a) for a in conn.execute(
            select(*SHOWN).where(FleetAlert.state == "resolved").order_by(FleetAlert.resolved_at.desc())
            .limit(history))]
    return firing, resolved


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
