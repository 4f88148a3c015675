"""The daily reconciliation: each gateway's books for a UTC day against HQ's payments, every difference flagged.

A notification can be lost, forged past a bug, or applied to the wrong amount;
the gateway's own list of its trades is the other side of the books. For a day
HQ reads the gateway's trades opened or paid that day (`Listing.records`) and
compares them with the payments HQ saw paid:

- `paid_at_gateway_only`: the gateway says paid, HQ has no payment or an unpaid
  (pending, expired) one — a lost notification the sweep did not find;
- `amount_mismatch`: both say paid, with different amounts (a held payment is one);
- `paid_at_hq_only`: HQ says paid, the gateway has no such trade or says unpaid;
- `refund_at_hq_only`: HQ recorded a refund that day, the gateway's books show less
  (or more) given back, or no such trade (unchecked when its books do not say);
- `refund_at_gateway_only`: the day's listing shows money given back for a trade HQ
  holds unrefunded.

A trade paid near midnight may sit on another day on the other side: each side's
trade is looked up on the other side whatever its day (a payment HQ holds that the
day's listing lacks is asked of the gateway by `query`), so only real differences
are flagged. A day is reconciled once it ended more than `GRACE` ago (notifications
still retrying). The outcome is stored per (gateway, day) — a rerun replaces it —
and exported as `kithq_payment_reconciliation_differences` (hq.metrics).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import select

from hq.clock import aware, iso, utcnow
from hq.metrics import RECONCILE_KINDS as KINDS
from hq.models import Order, Payment, PaymentGateway, PaymentReconciliation
from hq.payments import gateways
from hq.payments.contract import Forged, GatewayError, Listing, Record
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from hq.payments.contract import Gateway
    from hq.service import HQ

log = logging.getLogger("hq.payments.reconcile")
PAID = ("paid", "held", "refunding", "refunded")  # money arrived at HQ's account
GRACE = timedelta(hours=1)
RETRY_FAILED = timedelta(hours=1)
CHUNK = 500


def window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def run(hq: "HQ", day: date, operator: str, gateway: str | None = None,
        now: datetime | None = None) -> list[dict[str, Any]]:
    """Reconcile `day` for one configured gateway, or for all; each outcome as stored."""
    now = now or utcnow()
    start, end = window(day)
    if end + GRACE > now:
        raise InvalidInput(f"{day.isoformat()} has not ended more than an hour ago: its payments may still be notified")
    with hq.read() as conn:
        names = [gateway] if gateway else list(conn.scalars(select(PaymentGateway.name).order_by(PaymentGateway.name)))
        opened = {n: gateways.named(hq, conn, n) for n in names}
    if gateway is not None and opened[gateway] is None:
        raise InvalidInput(f"payment gateway {gateway!r} is not configured")
    if not names:
        raise InvalidInput("no payment gateway is configured")
    return [_one(hq, name, opened[name], day, operator, now) for name in names]


def due(hq: "HQ", now: datetime | None = None) -> int:
    """HQ's scheduled round: reconcile the last day that ended more than GRACE ago, for every configured
    gateway not reconciled for it yet (a failed one again after RETRY_FAILED); how many ran."""
    now = now or utcnow()
    day = (now - GRACE).date() - timedelta(days=1)
    with hq.read() as conn:
        names = list(conn.scalars(select(PaymentGateway.name).order_by(PaymentGateway.name)))
        done = {r.gateway: r for r in conn.execute(select(PaymentReconciliation.gateway, PaymentReconciliation.status,
                                                          PaymentReconciliation.ran_at)
                                                   .where(PaymentReconciliation.day == day))}
    todo = [n for n in names if n not in done
            or (done[n].status == "failed" and now - aware(done[n].ran_at) >= RETRY_FAILED)]
    for name in todo:
        run(hq, day, "hq:auto", name, now)
    return len(todo)


def _one(hq: "HQ", name: str, gateway: "Gateway | None", day: date, operator: str, now: datetime) -> dict[str, Any]:
    start, end = window(day)
    outcome: dict[str, Any] = {"gateway": name, "day": day, "ran_at": now, "ran_by": operator, "gateway_paid": 0,
                               "gateway_paid_cents": 0, "hq_paid": 0, "hq_paid_cents": 0, "differences": [],
                               "error": None}
    try:
        if not isinstance(gateway, Listing):
            raise GatewayError(f"{name} cannot list its records for reconciliation")
        records = gateway.records(start, end)
        outcome.update(compare(hq, gateway, name, records, start, end))
        outcome["status"] = "differences" if outcome["differences"] else "matched"
    except GatewayError as exc:
        outcome.update(status="failed", error=str(exc)[:200])
        log.warning("reconciliation of %s for %s failed: %s", name, day, exc)
    return _store(hq, outcome)


def compare(hq: "HQ", gateway: "Gateway", name: str, records: list[Record], start: datetime,
            end: datetime) -> dict[str, Any]:
    """The day's totals on both sides and every difference (one per trade and kind)."""
    listed = {r.out_trade_no: r for r in records}
    theirs = {t: r for t, r in listed.items() if r.paid and _within(r.paid_at or r.created_at, start, end)}
    with hq.read() as conn:
        ours = {p.out_trade_no: p for p in conn.execute(
            _payments().where(Payment.gateway == name, Payment.status.in_(PAID), Payment.paid_at >= start,
                              Payment.paid_at < end))}
        refunded = {p.out_trade_no: p for p in conn.execute(
            _payments().where(Payment.gateway == name, Payment.status == "refunded", Payment.refunded_at >= start,
                              Payment.refunded_at < end))}
        given_back = {t for t, r in listed.items() if r.refunded_cents}
        known = {p.out_trade_no: p for chunk in _chunks(sorted((set(theirs) | given_back) - set(ours)))
                 for p in conn.execute(_payments().where(Payment.out_trade_no.in_(chunk)))}
    known.update(ours)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for trade, rec in theirs.items():
        pay = known.get(trade)
        if pay is None or pay.status not in PAID:
            _flag(found, "paid_at_gateway_only", trade, pay, rec.amount_cents,
                  "no payment at HQ" if pay is None else f"HQ's payment is {pay.status}")
        elif rec.amount_cents != int(pay.amount_cents):
            _flag(found, "amount_mismatch", trade, pay, rec.amount_cents, f"HQ's payment is {pay.status}")
    for trade, pay in ours.items():
        rec = listed.get(trade) or _asked(gateway, trade)
        if rec is None or not rec.paid:
            _flag(found, "paid_at_hq_only", trade, pay, None if rec is None else rec.amount_cents,
                  "the gateway has no such trade" if rec is None else "the gateway says unpaid")
        elif rec.amount_cents != int(pay.amount_cents):
            _flag(found, "amount_mismatch", trade, pay, rec.amount_cents, f"HQ's payment is {pay.status}")
    _compare_refunds(found, gateway, listed, refunded, {t: known.get(t) for t in given_back})
    return {"gateway_paid": len(theirs), "gateway_paid_cents": sum(r.amount_cents for r in theirs.values()),
            "hq_paid": len(ours), "hq_paid_cents": sum(int(p.amount_cents) for p in ours.values()),
            "differences": sorted(found.values(), key=lambda d: (d["kind"], d["out_trade_no"]))}


def _compare_refunds(found: dict[tuple[str, str], dict[str, Any]], gateway: "Gateway", listed: dict[str, Record],
                     refunded: dict[str, Any], given_back: dict[str, Any]) -> None:
    """Refunds HQ recorded in the window against the gateway's books, and refunds the listing shows against HQ's.

    A gateway whose books do not say what was refunded (`refunded_cents` None) leaves HQ's refund unchecked."""
    for trade, pay in refunded.items():
        rec = listed.get(trade) or _asked(gateway, trade)
        if rec is None:
            _flag(found, "refund_at_hq_only", trade, pay, None, "the gateway has no such trade")
        elif rec.refunded_cents is not None and rec.refunded_cents != int(pay.amount_cents):
            _flag(found, "refund_at_hq_only", trade, pay, rec.refunded_cents,
                  f"the gateway gave back {rec.refunded_cents} fen of {int(pay.amount_cents)}")
    for trade, pay in given_back.items():
        if pay is None or pay.status not in ("refunded", "refunding"):
            _flag(found, "refund_at_gateway_only", trade, pay, listed[trade].refunded_cents,
                  "no payment at HQ" if pay is None else f"HQ's payment is {pay.status}")


def _payments() -> Any:
    return (select(Payment.out_trade_no, Payment.status, Payment.amount_cents, Order.hq_order_id, Order.site_id,
                   Order.order_id).join(Order, Order.id == Payment.order_pk))


def _asked(gateway: "Gateway", trade: str) -> Record | None:
    """A trade HQ holds paid that the day's listing lacks (paid on another day there?): the gateway's answer."""
    if isinstance(gateway, Listing):
        return gateway.record(trade)
    try:
        notice = gateway.query(trade)
    except Forged as exc:
        raise GatewayError(f"query of {trade}: {exc}") from None
    if notice is None:
        return None
    return Record(trade, notice.trade_no, notice.amount_cents, notice.paid, None, None)


def _flag(found: dict[tuple[str, str], dict[str, Any]], kind: str, trade: str, pay: Any, gateway_cents: int | None,
          detail: str) -> None:
    found.setdefault((kind, trade), {
        "kind": kind, "out_trade_no": trade, "hq_order_id": getattr(pay, "hq_order_id", None),
        "site": getattr(pay, "site_id", None), "order_id": getattr(pay, "order_id", None),
        "gateway_cents": gateway_cents, "hq_cents": None if pay is None else int(pay.amount_cents), "detail": detail})


def _store(hq: "HQ", outcome: dict[str, Any]) -> dict[str, Any]:
    with hq.session() as s:
        row = s.scalar(select(PaymentReconciliation).where(PaymentReconciliation.gateway == outcome["gateway"],
                                                           PaymentReconciliation.day == outcome["day"])
                       .with_for_update())
        if row is None:
            row = PaymentReconciliation(gateway=outcome["gateway"], day=outcome["day"])
            s.add(row)
        for key, value in outcome.items():
            setattr(row, key, value)
        s.flush()
        return reconciliation_json(row)


def reconciliation_json(row: PaymentReconciliation) -> dict[str, Any]:
    counts = {k: 0 for k in KINDS}
    for d in row.differences:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    return {"gateway": row.gateway, "day": row.day.isoformat(), "status": row.status, "ran_at": iso(row.ran_at),
            "ran_by": row.ran_by, "gateway_paid": row.gateway_paid, "gateway_paid_cents": int(row.gateway_paid_cents),
            "hq_paid": row.hq_paid, "hq_paid_cents": int(row.hq_paid_cents), "by_kind": counts,
            "differences": list(row.differences), "error": row.error}


def _within(at: datetime | None, start: datetime, end: datetime) -> bool:
    return at is not None and start <= aware(at) < end


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]
