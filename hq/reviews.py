"""The manual review queue: orders the risk engine sent to an operator."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hq import audit, commands, grade_cache
from hq.amounts import charge_cents
from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.models import CatalogItem, Order
from hq.orders import approve
from hq.payments import flow as payments

if TYPE_CHECKING:
    from sqlalchemy.engine import Row
    from sqlalchemy.orm import Session

    from hq.service import HQ

log = logging.getLogger("hq.reviews")


def queue(hq: "HQ", site_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with hq.read() as conn:  # plain rows: the fleet page reads this on every load
        query = select(Order).where(Order.status == "review").order_by(Order.id).limit(limit)
        if site_id:
            query = query.where(Order.site_id == site_id)
        return [review_json(o) for o in conn.execute(query)]


def review_json(o: "Order | Row[Any]") -> dict[str, Any]:
    return {
        "hq_order_id": o.hq_order_id, "site": o.site_id, "order_id": o.order_id, "sku": o.sku,
        "quantity": o.quantity, "amount_cents": charge_cents(o.unit_price_cents, o.quantity, o.total_cents),
        "currency": o.currency,
        "buyer": {"account": o.buyer_account, "contact": o.buyer_contact, "ip": o.buyer_ip, "region": o.buyer_region},
        "reasons": list(o.reasons), "received_at": iso(o.received_at), "status": o.status, "decision": o.decision,
    }


def resolve(hq: "HQ", operator: str, hq_order_id: str, decision: str, note: str | None = None) -> dict[str, Any]:
    """Approve (reserving keys now) or reject an order under review."""
    early = link_beforehand(hq, hq_order_id) if decision == "approve" else payments.NOTHING_BEFOREHAND
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.hq_order_id == hq_order_id).with_for_update())
        if row is None:
            raise ApiError(404, "not_found", f"order {hq_order_id!r} does not exist")
        if row.status != "review":
            raise ApiError(409, "not_in_review", f"order {hq_order_id!r} is {row.status}, not under review")
        row.decided_by, row.decided_at = operator, utcnow()
        s.flush()
        held = payments.held_payment(s.connection(), row.id)
        if held is not None:  # the buyer has paid but the payment did not fit: the operator decides on it
            delivered = decision == "approve" and payments.accept_held(s.connection(), held, utcnow())
            s.refresh(row)
            if not delivered:  # the money goes back through the gateway once this commits
                payments.release_keys(s.connection(), row.id)
                row.decision, row.status = "reject", "rejected"
                row.reasons = [*row.reasons, "refund_due"] + (["out_of_stock"] if decision == "approve" else [])
        elif decision == "approve":
            approve(hq, s, row, s.get(CatalogItem, row.sku), early)
        else:
            row.decision, row.status = "reject", "rejected"
        row.reasons = [*row.reasons, f"operator:{decision}"]
        audit.record(s, operator, f"review.{decision}", row.site_id, hq_order_id=hq_order_id, note=note,
                     outcome=row.status)
        grade_cache.invalidate(s, row.site_id, row.received_at)  # its month's rates change now
        tell_site(s, row)
        result = review_json(row)
    if "refund_due" in result["reasons"]:
        result = _refund_after_review(hq, operator, result)
    return result


def link_beforehand(hq: "HQ", hq_order_id: str) -> payments.Beforehand:
    """The pay link an approval will need, asked of a gateway that makes it over the network (Alipay, WeChat Pay)
    before the approval's transaction locks the order, so no writer waits on the gateway. Only an unpaid order
    under review needs one; the transaction decides again (and asks itself if this one does not fit)."""
    with hq.read() as conn:
        gateway = payments.remote_gateway(hq, conn)
        row = None if gateway is None else conn.execute(select(Order).where(Order.hq_order_id == hq_order_id)).first()
        if row is None or row.status != "review" or payments.held_payment(conn, row.id) is not None:
            return payments.NOTHING_BEFOREHAND
    return payments.ask_beforehand(hq, gateway, [payments.Payable(
        row.id, row.site_id, row.order_id, row.sku, row.quantity,
        charge_cents(row.unit_price_cents, row.quantity, row.total_cents), row.currency)])


def tell_site(session: "Session", row: Order) -> None:
    """A signed `review_decided` command for the order's site: over the push channel its agent asks for the
    decision at once, instead of at its next review poll (issue 19)."""
    site = commands.lock_site(session, row.site_id)
    if site is not None and site.status != "revoked":
        commands.enqueue(session, site, "review_decided", {"order": row.order_id})


def _refund_after_review(hq: "HQ", operator: str, result: dict[str, Any]) -> dict[str, Any]:
    """A paid order the operator did not deliver: refund it now; if the gateway fails it stays `refund_due`."""
    from hq.payments import refunds

    try:
        refunds.refund(hq, operator, result["hq_order_id"], "rejected after payment")
    except ApiError as exc:
        log.warning("refund of %s after review failed: %s", result["hq_order_id"], exc.detail)
        return result
    return {**result, "status": "refunded", "reasons": [*result["reasons"], "refunded"]}
