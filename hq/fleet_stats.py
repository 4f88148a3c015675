"""The fleet in numbers, read from HQ's database: what `/metrics` shows as gauges."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from hq.clock import aware, utcnow
from hq.licences import licence_state_of
from hq.models import FleetAlert, Licence, Order, PaymentReconciliation, Site

if TYPE_CHECKING:
    from hq.service import HQ


@dataclass(frozen=True)
class FleetStats:
    by_state: dict[str, int] = field(default_factory=dict)
    silent: int = 0
    review_depth: int = 0
    review_oldest_age: float = 0.0
    alerts_by_kind: dict[str, int] = field(default_factory=dict)
    # per gateway, its latest reconciled day: whether that run failed, and its differences by kind
    reconciled: dict[str, tuple[bool, dict[str, int]]] = field(default_factory=dict)


def silent_after(hq: "HQ") -> timedelta:
    """How long without a heartbeat makes a site silent: N heartbeat intervals."""
    return timedelta(seconds=hq.settings.silent_heartbeats * hq.settings.heartbeat_interval_seconds)


def read(hq: "HQ") -> FleetStats:
    """Four small aggregate reads; no per-site rows leave the database but (status, expiry)."""
    now = utcnow()
    with hq.read() as conn:
        by_state: dict[str, int] = {}
        for status, expires_at in conn.execute(
                select(Site.status, Licence.expires_at).outerjoin(Licence, Licence.jti == Site.current_jti)):
            state = licence_state_of(status, expires_at, now) if expires_at is not None else status
            by_state[state] = by_state.get(state, 0) + 1
        silent = conn.execute(select(func.count()).select_from(Site).where(
            Site.status != "revoked", Site.last_heartbeat_at.is_not(None),
            Site.last_heartbeat_at < now - silent_after(hq))).scalar_one()
        depth, oldest = conn.execute(select(func.count(), func.min(Order.received_at))
                                     .where(Order.status == "review")).one()
        alerts = dict(conn.execute(select(FleetAlert.kind, func.count()).where(FleetAlert.state == "firing")
                                   .group_by(FleetAlert.kind)).all())
    age = (now - aware(oldest)).total_seconds() if oldest is not None else 0.0
    return FleetStats(by_state, int(silent), int(depth), max(age, 0.0), {k: int(v) for k, v in alerts.items()},
                      reconciled(hq))


def reconciled(hq: "HQ") -> dict[str, tuple[bool, dict[str, int]]]:
    """Each gateway's latest reconciled day (hq.payments.reconcile): failed or not, its differences by kind."""
    r = PaymentReconciliation
    latest = select(r.gateway, func.max(r.day).label("day")).group_by(r.gateway).subquery()
    with hq.read() as conn:
        rows = conn.execute(select(r.gateway, r.status, r.differences)
                            .join(latest, (latest.c.gateway == r.gateway) & (latest.c.day == r.day))).all()
    out: dict[str, tuple[bool, dict[str, int]]] = {}
    for gateway, status, differences in rows:
        counts: dict[str, int] = {}
        for d in differences or []:
            counts[d["kind"]] = counts.get(d["kind"], 0) + 1
        out[gateway] = (status == "failed", counts)
    return out
