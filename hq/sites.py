"""Heartbeats in, licence status and signed commands out; the fleet overview."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from hq import audit, commands
from hq.clock import aware, iso, utcnow
from hq.errors import ApiError
from hq.licences import licence_state, licence_state_of
from hq.models import Licence, Order, Site
from hq.schemas import HeartbeatIn

if TYPE_CHECKING:
    from hq.service import HQ

MAX_JSON_BYTES = 16 * 1024


@lru_cache(maxsize=1)
def _heartbeat_sql() -> tuple[Any, Any]:
    """(lock-and-read, record), built once. The read also proves the caller's licence (by jti)
    belongs to this site, which is all the heartbeat needs of it: revoked and suspended
    sites are answered too."""
    from sqlalchemy import and_, bindparam, exists, update

    known = exists().where(Licence.jti == bindparam("jti"), Licence.site_id == Site.id).correlate(Site)
    read = (select(Site.status, Site.status_reason, Site.command_seq, Site.applied_seq, Licence.expires_at,
                   known.label("known"))
            .outerjoin(Licence, and_(Licence.jti == Site.current_jti))
            .where(Site.id == bindparam("site")).with_for_update(of=Site))
    record = update(Site).where(Site.id == bindparam("site")).values(
        last_heartbeat_at=bindparam("at"), version=bindparam("version"), health=bindparam("health"),
        counters=bindparam("counters"), applied_seq=bindparam("applied"))
    return read, record


def heartbeat(hq: "HQ", site_id: str, jti: str, beat: HeartbeatIn) -> dict[str, Any]:
    """Record the site's state, acknowledge applied commands, return what is pending.

    One transaction, usually two statements: lock and read the site with its
    current licence (and check the caller's licence is this site's), record the
    beat; acknowledging and reading commands only happen when there are any.
    """
    read, record = _heartbeat_sql()
    with hq.connection() as conn:
        site = conn.execute(read, {"site": site_id, "jti": jti}).first()
        if site is None or not site.known:
            raise ApiError(401, "unknown_licence", "this licence is not known to HQ")
        for name, value in (("health", beat.health), ("counters", beat.counters)):
            if len(json.dumps(value, default=str)) > MAX_JSON_BYTES:
                raise ApiError(413, "too_large", f"{name} is larger than {MAX_JSON_BYTES} bytes")
        applied = max(site.applied_seq, min(beat.applied_seq, site.command_seq))
        if applied > site.applied_seq:
            commands.acknowledge(conn, site_id, applied)
        conn.execute(record, {"site": site_id, "at": utcnow(), "version": beat.version, "health": beat.health,
                              "counters": beat.counters, "applied": applied})
        due = commands.pending(conn, site_id, applied) if site.command_seq > applied else []
        return answer(hq, site.status, site.status_reason, site.expires_at, due)


@lru_cache(maxsize=1)
def _pending_sql() -> Any:
    """The heartbeat's read without its lock: the push channel only reads."""
    from sqlalchemy import and_, bindparam, exists

    known = exists().where(Licence.jti == bindparam("jti"), Licence.site_id == Site.id).correlate(Site)
    return (select(Site.status, Site.status_reason, Site.command_seq, Site.applied_seq, Licence.expires_at,
                   known.label("known"))
            .outerjoin(Licence, and_(Licence.jti == Site.current_jti)).where(Site.id == bindparam("site")))


def pending_answer(hq: "HQ", site_id: str, jti: str, after: int) -> dict[str, Any]:
    """What a heartbeat would answer now, recording nothing: the push channel's reply.

    `after` is the sequence the agent has applied; as in a heartbeat, HQ never hands out
    again what the site acknowledged before, whatever `after` says.
    """
    with hq.read() as conn:
        site = conn.execute(_pending_sql(), {"site": site_id, "jti": jti}).first()
        if site is None or not site.known:
            raise ApiError(401, "unknown_licence", "this licence is not known to HQ")
        applied = max(site.applied_seq, min(after, site.command_seq))
        due = commands.pending(conn, site_id, applied) if site.command_seq > applied else []
    return answer(hq, site.status, site.status_reason, site.expires_at, due)


def answer(hq: "HQ", status: str, reason: str | None, expires_at: datetime | None, due: list[Any]) -> dict[str, Any]:
    """The heartbeat's reply (the exact HeartbeatOut shape): licence state and the pending commands, signed now."""
    state = licence_state_of(status, expires_at) if expires_at is not None else status
    now = int(time.time())
    return {
        "interval_seconds": hq.settings.heartbeat_interval_seconds,
        "licence": {"status": state, "reason": reason},
        "commands": [commands.sign(hq, c, now) for c in due],
        "server_time": now,
    }


def sync_now(hq: "HQ", operator: str, site_id: str) -> dict[str, Any]:
    with hq.session() as s:
        site = commands.lock_site(s, site_id)
        if site is None:
            raise ApiError(404, "not_found", f"site {site_id!r} does not exist")
        cmd = commands.enqueue(s, site, "sync_now", {})
        audit.record(s, operator, "site.sync_now", site_id, seq=cmd.seq)
        return {"site": site_id, "seq": cmd.seq, "type": "sync_now"}


def fleet(hq: "HQ") -> list[dict[str, Any]]:
    """Every site: licence state, tier, last heartbeat, version, health, orders today, reviews."""
    now = utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with hq.session() as s:
        today = dict(s.execute(select(Order.site_id, func.count()).where(Order.received_at >= midnight)
                               .group_by(Order.site_id)).all())
        reviews = dict(s.execute(select(Order.site_id, func.count()).where(Order.status == "review")
                                 .group_by(Order.site_id)).all())
        rows = s.execute(select(Site, Licence).outerjoin(Licence, Licence.jti == Site.current_jti).order_by(Site.id))
        out = []
        for site, lic in rows:
            out.append({
                "site": site.id,
                "status": licence_state(site, lic, now) if lic else site.status,
                "reason": site.status_reason,
                "tier": lic.tier if lic else None,
                "categories": list(lic.categories) if lic else [],
                "expires_at": iso(lic.expires_at) if lic else None,
                "last_heartbeat_at": iso(site.last_heartbeat_at),
                "online": bool(site.last_heartbeat_at and now - aware(site.last_heartbeat_at)
                               < timedelta(seconds=3 * hq.settings.heartbeat_interval_seconds)),
                "version": site.version,
                "health": site.health or {},
                "orders_today": int(today.get(site.id, 0)),
                "reviews": int(reviews.get(site.id, 0)),
                "command_seq": site.command_seq,
                "applied_seq": site.applied_seq,
            })
        return out

