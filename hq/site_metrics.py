"""A site's metrics for a period, from the orders HQ decided and the fleet alerts its heartbeats raised.

- GMV: what buyers paid for delivered orders (refunded ones are counted in the refund rate);
  growth: against the period of the same length just before (None when that had none).
- Repurchase rate: buyers with two or more delivered orders over buyers with one or more. A
  buyer is a keyed hash of the normalised contact (hq.vault `index`, purpose `repurchase`),
  made in memory while counting; neither the contact nor the hash is kept or returned.
- Rejection, review, refund rates: rejected / orders, orders a person decided or still
  waiting for review / orders, refunded / (delivered + refunded). None with no orders.
- Uptime and sync health: 1 − the share of the period with a `silent` (no heartbeat),
  resp. `sync_stale` fleet alert open (hq.fleet_alerts).
- Complaints: how many buyers' complaints HQ received about the site in the period (hq.complaints).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterable

from sqlalchemy import and_, case, func, or_, select

from hq.clock import aware
from hq.models import Complaint, FleetAlert, Order

if TYPE_CHECKING:
    from hq.service import HQ

PURPOSE = "repurchase"
FEW = 50  # up to this many sites, the queries name them (an IN list), beyond it they read every site


def repurchase(buyer_keys: Iterable[str]) -> tuple[int, int]:
    """(buyers, repeat buyers) from one key per delivered order (keys: hashes, never contacts)."""
    counts = Counter(buyer_keys)
    return len(counts), sum(1 for n in counts.values() if n >= 2)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def _charge():  # type: ignore[no-untyped-def]
    return func.coalesce(Order.total_cents, Order.unit_price_cents * Order.quantity)


def order_figures(hq: "HQ", start: datetime, end: datetime,
                  only: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Per site (all, or `only` these): orders, delivered, rejected, reviewed, refunded and GMV (cents) received
    in [start, end)."""
    o = Order
    reviewed = or_(o.status == "review", and_(o.decided_by.is_not(None), o.decided_by != "risk-engine"))
    query = (select(o.site_id, func.count(),
                    func.sum(case((o.status == "delivered", 1), else_=0)),
                    func.sum(case((o.status == "rejected", 1), else_=0)),
                    func.sum(case((reviewed, 1), else_=0)),
                    func.sum(case((o.status == "refunded", 1), else_=0)),
                    func.sum(case((o.status == "delivered", _charge()), else_=0)))
             .where(o.received_at >= start, o.received_at < end).group_by(o.site_id))
    if only is not None:
        query = query.where(o.site_id.in_(only))
    with hq.read() as conn:
        return {row[0]: {"orders": int(row[1]), "delivered": int(row[2] or 0), "rejected": int(row[3] or 0),
                         "reviewed": int(row[4] or 0), "refunded": int(row[5] or 0), "gmv_cents": int(row[6] or 0)}
                for row in conn.execute(query)}


def repurchase_by_site(hq: "HQ", start: datetime, end: datetime, key: Callable[[str], str] | None = None,
                       only: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """Per site (buyers, repeat buyers) over delivered orders; contacts are hashed as they are read."""
    hash_of = key or (lambda contact: hq.vault.index(contact, PURPOSE))
    per_site: dict[str, list[str]] = {}
    query = select(Order.site_id, Order.buyer_contact).where(
        Order.received_at >= start, Order.received_at < end, Order.status == "delivered")
    if only is not None:
        query = query.where(Order.site_id.in_(only))
    with hq.read() as conn:
        for site_id, contact in conn.execute(query):
            per_site.setdefault(site_id, []).append(hash_of(contact))
    return {site: repurchase(keys) for site, keys in per_site.items()}


def downtime(hq: "HQ", kind: str, start: datetime, end: datetime,
             only: list[str] | None = None) -> dict[str, float]:
    """Per site, seconds of [start, end) with an alert of `kind` open."""
    query = select(FleetAlert.site_id, FleetAlert.opened_at, FleetAlert.resolved_at).where(
        FleetAlert.kind == kind, FleetAlert.opened_at < end,
        or_(FleetAlert.resolved_at.is_(None), FleetAlert.resolved_at > start))
    if only is not None:
        query = query.where(FleetAlert.site_id.in_(only))
    out: dict[str, float] = {}
    with hq.read() as conn:
        for site_id, opened, resolved in conn.execute(query):
            begin, finish = max(aware(opened), start), min(aware(resolved) if resolved else end, end)
            out[site_id] = out.get(site_id, 0.0) + max(0.0, (finish - begin).total_seconds())
    return out


def complaint_counts(hq: "HQ", start: datetime, end: datetime, only: list[str] | None = None) -> dict[str, int]:
    """Per site, buyers' complaints HQ received in [start, end) (hq.complaints), resolved or not."""
    query = (select(Complaint.site_id, func.count()).where(Complaint.received_at >= start, Complaint.received_at < end)
             .group_by(Complaint.site_id))
    if only is not None:
        query = query.where(Complaint.site_id.in_(only))
    with hq.read() as conn:
        return {site: int(n) for site, n in conn.execute(query)}


def metrics(hq: "HQ", sites: list[str], start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    """Every metric of each of `sites` for [start, end) (docstring above). A few sites (one site asking for its
    own grade) are read by id; the whole fleet in one pass per query."""
    only = sites if len(sites) <= FEW else None
    now, before = order_figures(hq, start, end, only), order_figures(hq, start - (end - start), start, only)
    repeat = repurchase_by_site(hq, start, end, only=only)
    silent, stale = downtime(hq, "silent", start, end, only), downtime(hq, "sync_stale", start, end, only)
    complained = complaint_counts(hq, start, end, only)
    seconds = max((end - start).total_seconds(), 1.0)
    out = {}
    for site in sites:
        f = now.get(site, {"orders": 0, "delivered": 0, "rejected": 0, "reviewed": 0, "refunded": 0, "gmv_cents": 0})
        earlier = before.get(site, {}).get("gmv_cents", 0)
        buyers, repeaters = repeat.get(site, (0, 0))
        out[site] = {
            "gmv_cents": f["gmv_cents"], "growth": _rate(f["gmv_cents"] - earlier, earlier), "orders": f["orders"],
            "buyers": buyers, "repurchase_rate": _rate(repeaters, buyers),
            "rejection_rate": _rate(f["rejected"], f["orders"]), "review_rate": _rate(f["reviewed"], f["orders"]),
            "refund_rate": _rate(f["refunded"], f["delivered"] + f["refunded"]),
            "uptime": 1 - min(silent.get(site, 0.0), seconds) / seconds,
            "sync_health": 1 - min(stale.get(site, 0.0), seconds) / seconds,
            "complaints": complained.get(site, 0),
        }
    return out


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month `YYYY-MM` (UTC)."""
    from datetime import timezone

    year, month = int(period[:4]), int(period[5:7])
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def previous_month(period: str) -> str:
    start, _ = month_bounds(period)
    last = start - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"
