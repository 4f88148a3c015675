"""Refunds through the gateway: the money goes back first, then HQ records it (ledger, order, audit).

A refund is claimed (`payments.status = refunding`) in a transaction of its
own before the gateway is asked, so two operators (or a retry) never send two
refunds for one payment; a refusal or an unreachable gateway puts the claim
back and says why in one line. A delivered order's ledger entry is reversed
(`refund` entry, docs/settlement.md); a held one had none. Reserved keys go
back on sale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.ledger import entries
from hq.ledger.events import check_reason
from hq.models import AuditEvent, Order, Payment
from hq.payments import gateways
from hq.payments.contract import GatewayError
from hq.payments.flow import release_keys

if TYPE_CHECKING:
    from hq.service import HQ

REFUNDABLE = ("paid", "held")


def refund(hq: "HQ", operator: str, hq_order_id: str, reason: str) -> dict[str, Any]:
    """Refund an order's payment in full through its gateway, and record it."""
    check_reason(reason)
    pay, before = _claim(hq, hq_order_id)
    with hq.read() as conn:
        gateway = gateways.named(hq, conn, pay.gateway)
    try:
        if gateway is None:
            raise GatewayError(f"gateway {pay.gateway!r} is no longer configured")
        answer = gateway.refund(pay.out_trade_no, int(pay.amount_cents))
        if not answer.accepted:
            raise GatewayError(f"{pay.gateway} refused the refund: {answer.message or 'no reason given'}")
    except GatewayError as exc:
        with hq.connection() as conn:
            conn.execute(update(Payment).where(Payment.id == pay.id, Payment.status == "refunding")
                         .values(status=before))
        raise ApiError(502, "refund_failed", str(exc)) from None
    return _record(hq, operator, pay, reason)


def _claim(hq: "HQ", hq_order_id: str) -> tuple[Any, str]:
    with hq.connection() as conn:
        order = conn.execute(select(Order.id).where(Order.hq_order_id == hq_order_id)).first()
        if order is None:
            raise ApiError(404, "not_found", f"order {hq_order_id!r} does not exist")
        pay = conn.execute(select(Payment).where(Payment.order_pk == order.id).with_for_update()).first()
        if pay is None:
            raise ApiError(409, "not_paid", f"order {hq_order_id!r} has no payment at a gateway")
        if pay.status not in REFUNDABLE:
            raise ApiError(409, "not_refundable", f"order {hq_order_id!r}: its payment is {pay.status}")
        conn.execute(update(Payment).where(Payment.id == pay.id).values(status="refunding"))
        return pay, pay.status


def _record(hq: "HQ", operator: str, pay: Any, reason: str) -> dict[str, Any]:
    now = utcnow()
    with hq.connection() as conn:
        conn.execute(update(Payment).where(Payment.id == pay.id).values(status="refunded", refunded_at=now))
        order = conn.execute(select(Order).where(Order.id == pay.order_pk)).first()
        original = entries.find(conn, "order", order.hq_order_id)
        if original is not None and entries.find(conn, "refund", order.hq_order_id) is None:
            entries.post(conn, [entries.reversal(conn, original, "refund", order.hq_order_id, now, operator, reason)])
        release_keys(conn, order.id)
        conn.execute(update(Order).where(Order.id == order.id)
                     .values(status="refunded", reasons=[*order.reasons, "refunded"], decided_at=now))
        conn.execute(insert(AuditEvent), [{"at": now, "operator": operator, "action": "payments.refund",
                                           "site_id": order.site_id, "detail": {
                                               "hq_order_id": order.hq_order_id, "reason": reason,
                                               "amount_cents": int(pay.amount_cents), "gateway": pay.gateway}}])
    return {"hq_order_id": order.hq_order_id, "status": "refunded", "amount_cents": int(pay.amount_cents),
            "currency": pay.currency, "refunded_at": iso(now)}
