"""Orders: idempotent submission, risk decision, card-key delivery, review outcome.

Two layers of deduplication:
- the request's `Idempotency-Key` (per site): the same key with the same body
  replays the first answer, with a different body is refused (422), and while
  the first request is still being processed another gets 409;
- each order's `(site, order_id)`: an order sent again in another batch gets
  its first decision back marked `replayed`, a different body for it is 422.
Answers are rebuilt from the order rows, so no card-key secret is ever kept
in plain text for a replay.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq import batch as batches
from hq import inventory, risk
from hq.ledger import events as ledger
from hq.clock import aware, utcnow
from hq.errors import ApiError
from hq.metrics import metrics
from hq.models import CatalogItem, IdempotencyKey, Order
from hq.order_checks import SiteContext, catalog_problem
from hq.payments import flow as payments
from hq.payments import gateways
from hq.schemas import OrderBatch, OrderIn

if TYPE_CHECKING:
    from hq.service import HQ


def body_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def order_body(order: OrderIn) -> dict[str, Any]:
    """The order as its digest sees it. A total equal to the list price (no discount) is left out, so an order
    sent before sites carried `total_cents` and resent after an upgrade is still the same order (and batch)."""
    body = order.model_dump(mode="json")
    if order.total_cents is None or order.total_cents == order.unit_price_cents * order.quantity:
        body.pop("total_cents", None)
    return body


def order_hash(order: OrderIn) -> str:
    return body_hash(order_body(order))


def batch_hash(batch: OrderBatch) -> str:
    """The request's digest its Idempotency-Key is held to: its orders as `order_body` sees them."""
    return body_hash({"orders": [order_body(o) for o in batch.orders]})


# -- idempotency key -------------------------------------------------------

@lru_cache(maxsize=1)
def _claim_statement():  # type: ignore[no-untyped-def]
    return insert(IdempotencyKey)


def claim_row(hq: "HQ", site_id: str, key: str, request_hash: str, now: datetime) -> dict[str, Any]:
    """The row that claims `key` for a request now being decided (kept the configured retention)."""
    return {"site_id": site_id, "key": key, "request_sha256": request_hash, "state": "in_flight",
            "created_at": now, "expires_at": now + timedelta(days=hq.settings.idempotency_retention_days)}


def claim_key(hq: "HQ", site_id: str, key: str, request_hash: str) -> list[str] | None:
    """Claim `key` for this request; the stored hq order ids if it is a finished replay."""
    now = utcnow()
    try:
        with hq.connection() as conn:
            conn.execute(_claim_statement(), claim_row(hq, site_id, key, request_hash, now))
        return None
    except IntegrityError:
        pass
    with hq.session() as s:
        row = s.scalar(select(IdempotencyKey).where(IdempotencyKey.site_id == site_id, IdempotencyKey.key == key)
                       .with_for_update())
        if row is None:  # released in the meantime: try once more from the top
            s.add(IdempotencyKey(**claim_row(hq, site_id, key, request_hash, now)))
            return None
        if row.request_sha256 != request_hash:
            raise ApiError(422, "idempotency_conflict", "this Idempotency-Key was used with a different body")
        if row.state == "done":
            return list(row.hq_order_ids or [])
        if now - aware(row.created_at) < timedelta(seconds=hq.settings.in_flight_timeout_seconds):
            raise ApiError(409, "idempotency_in_flight", "a request with this Idempotency-Key is still being processed",
                           headers={"Retry-After": "1"})
        row.created_at = now  # the first attempt died; this one takes over
        return None


def finish_key(hq: "HQ", site_id: str, key: str, hq_order_ids: list[str]) -> None:
    with hq.session() as s:
        row = s.get(IdempotencyKey, (site_id, key))
        if row is not None:
            row.state, row.hq_order_ids = "done", hq_order_ids


def release_key(hq: "HQ", site_id: str, key: str) -> None:
    """The request was refused before changing anything: forget the key."""
    with hq.session() as s:
        s.execute(delete(IdempotencyKey).where(IdempotencyKey.site_id == site_id, IdempotencyKey.key == key,
                                               IdempotencyKey.state == "in_flight"))


# -- submission ------------------------------------------------------------

def submit(hq: "HQ", ctx: SiteContext, key: str, batch: OrderBatch) -> tuple[list[dict[str, Any]], bool]:
    """Decide every order in the batch; returns (results, whole request was a replay)."""
    refuse_invalid(batch)
    replay_ids = claim_key(hq, ctx.site_id, key, batch_hash(batch))
    if replay_ids is not None:
        return results_for(hq, ctx.site_id, replay_ids, replayed=True), True
    try:
        try:  # the common case, new orders only: one transaction for the whole batch
            results = batches.decide_new(hq, [batches.Part(ctx, key, len(batch.orders))], batch.orders,
                                         [order_hash(o) for o in batch.orders])
        except IntegrityError:  # another request inserted one of these orders meanwhile
            results = None
        return (results if results is not None else decide_each(hq, ctx, key, batch)), False
    except BaseException:
        release_key(hq, ctx.site_id, key)
        raise


def refuse_invalid(batch: OrderBatch) -> None:
    """422 for a batch no decision may take: an order_id twice, a total above the list price."""
    ids = [o.order_id for o in batch.orders]
    if len(set(ids)) != len(ids):
        raise ApiError(422, "duplicate_order_id", "orders: the batch lists the same order_id twice")
    for i, order in enumerate(batch.orders):
        if order.total_cents is not None and order.total_cents > order.unit_price_cents * order.quantity:
            raise ApiError(422, "total_above_list_price",
                           f"orders.{i}.total_cents: more than unit_price_cents × quantity")


def decide_each(hq: "HQ", ctx: SiteContext, key: str, batch: OrderBatch) -> list[dict[str, Any]]:
    """The per-order path for a request whose key the caller claimed (it releases the key if this raises):
    known orders read back, new ones decided one at a time, then the key finished with their ids."""
    _refuse_changed_orders(hq, ctx.site_id, batch)
    results = [decide_one(hq, ctx, order) for order in batch.orders]
    finish_key(hq, ctx.site_id, key, [r["hq_order_id"] for r in results])
    return results


def _refuse_changed_orders(hq: "HQ", site_id: str, batch: OrderBatch) -> None:
    with hq.session() as s:
        known = dict(s.execute(select(Order.order_id, Order.request_sha256).where(
            Order.site_id == site_id, Order.order_id.in_([o.order_id for o in batch.orders]))).all())
    for order in batch.orders:
        if order.order_id in known and known[order.order_id] != order_hash(order):
            raise ApiError(422, "idempotency_conflict", f"order {order.order_id!r} was already sent with a different body")


def decide_one(hq: "HQ", ctx: SiteContext, order: OrderIn) -> dict[str, Any]:
    """Decide and (on approve) fulfil one order in its own transaction (a pay link from a gateway that makes it
    over the network is asked before that transaction opens, as for a batch)."""
    digest = order_hash(order)
    early = batches.links_beforehand(hq, [ctx], [order])
    try:
        with hq.session() as s:
            existing = s.scalar(select(Order).where(Order.site_id == ctx.site_id, Order.order_id == order.order_id))
            if existing is not None:
                return _existing(hq, s, existing, digest)
            row = _new_order(hq, s, ctx, order, digest, early)
            result = result_json(hq, s, row, replayed=False)
        metrics().decided(result["decision"], result["reasons"])  # counted once committed
        return result
    except IntegrityError:  # the same order arrived concurrently in another request
        with hq.session() as s:
            existing = s.scalar(select(Order).where(Order.site_id == ctx.site_id, Order.order_id == order.order_id))
            if existing is None:
                raise
            return _existing(hq, s, existing, digest)


def _existing(hq: "HQ", s: Session, row: Order, digest: str) -> dict[str, Any]:
    if row.request_sha256 != digest:
        raise ApiError(422, "idempotency_conflict", f"order {row.order_id!r} was already sent with a different body")
    return result_json(hq, s, row, replayed=True)


def _new_order(hq: "HQ", s: Session, ctx: SiteContext, order: OrderIn, digest: str,
               early: payments.Beforehand = payments.NOTHING_BEFOREHAND) -> Order:
    now = utcnow()
    item = s.get(CatalogItem, order.sku)
    amount = order.unit_price_cents * order.quantity
    problem = catalog_problem(item, ctx, order)
    if problem:
        decision = risk.Decision("reject", [problem])
    else:
        candidate = risk.Candidate(
            site_id=ctx.site_id, quantity=order.quantity, amount_cents=amount, account=order.buyer.account,
            contact=order.buyer.contact, ip=order.buyer.ip, region=order.buyer.region, licence_regions=ctx.regions)
        decision = risk.evaluate(s, hq.rules.get(), candidate, now)
    row = Order(
        hq_order_id="hq_" + uuid.uuid4().hex, site_id=ctx.site_id, order_id=order.order_id, request_sha256=digest,
        sku=order.sku, quantity=order.quantity, unit_price_cents=order.unit_price_cents,
        total_cents=order.total_cents, hq_price_cents=item.price_cents if item is not None else None, currency=order.currency,
        buyer_account=order.buyer.account, buyer_contact=order.buyer.contact, buyer_ip=order.buyer.ip,
        buyer_region=order.buyer.region, site_created_at=order.created_at, received_at=now,
        decision=decision.decision, status="review" if decision.decision == "review" else "rejected",
        reasons=decision.reasons, decided_by="risk-engine", decided_at=now,
    )
    s.add(row)
    s.flush()
    if decision.decision == "approve":
        approve(hq, s, row, item, early)
    return row


def approve(hq: "HQ", s: Session, row: Order, item: CatalogItem | None,
            early: payments.Beforehand = payments.NOTHING_BEFOREHAND) -> None:
    """An approved order: payable (keys reserved) when a gateway is enabled, else fulfilled at once (test mode).
    Its pay link comes from `early` when it was asked before the transaction (else the gateway is asked here)."""
    gateway = gateways.active(hq, s.connection())
    if gateway is None:
        fulfil(s, row, item)
        return
    if item is not None and item.stock_kind == "card_key" and not payments.reserve(
            s.connection(), row.sku, row.quantity, row.id):
        row.decision, row.status, row.reasons = "reject", "rejected", [*row.reasons, "out_of_stock"]
        return
    row.decision, row.status = "approve", "pending_payment"
    s.flush()
    payments.open_payments(hq, s.connection(), gateway, [payments.Payable(
        row.id, row.site_id, row.order_id, row.sku, row.quantity, row.charge_cents, row.currency)], utcnow(),
        early.links_for(gateway))
    s.refresh(row)  # a notification that was waiting for this order may have settled it already


def fulfil(s: Session, row: Order, item: CatalogItem | None) -> None:
    """Allocate card keys (or accept a direct top-up) and post the paid order; out of stock turns into a reject."""
    if item is not None and item.stock_kind == "card_key" and not inventory.allocate(s, row.sku, row.quantity, row.id):
        row.decision, row.status, row.reasons = "reject", "rejected", [*row.reasons, "out_of_stock"]
        return
    row.decision, row.status = "approve", "delivered"
    ledger.order_paid(s.connection(), [ledger.paid_order(row, item.category if item else None)])


def result_json(hq: "HQ", s: Session, row: Order, replayed: bool) -> dict[str, Any]:
    delivery = payment = None
    if row.status == "delivered":
        delivery = {"card_keys": inventory.delivered_keys(hq, s, row.id)}
    if row.status == "pending_payment":
        payment = payments.payment_of(s.connection(), row.id)
    return {
        "order_id": row.order_id, "hq_order_id": row.hq_order_id, "decision": row.decision, "status": row.status,
        "reasons": list(row.reasons), "delivery": delivery, "replayed": replayed, "payment": payment,
    }


def results_for(hq: "HQ", site_id: str, hq_order_ids: list[str], replayed: bool) -> list[dict[str, Any]]:
    with hq.session() as s:
        rows = {r.hq_order_id: r for r in s.scalars(select(Order).where(
            Order.site_id == site_id, Order.hq_order_id.in_(hq_order_ids)))}
        return [result_json(hq, s, rows[i], replayed) for i in hq_order_ids if i in rows]


def get_order(hq: "HQ", site_id: str, order_id: str) -> dict[str, Any]:
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.site_id == site_id, Order.order_id == order_id))
        if row is None:
            raise ApiError(404, "not_found", f"order {order_id!r} is unknown to HQ")
        return result_json(hq, s, row, replayed=False)


def statuses(hq: "HQ", site_id: str, order_ids: list[str]) -> list[dict[str, Any]]:
    """The site's orders among `order_ids` as `get_order` tells each (in the order asked; unknown ones left out)."""
    with hq.session() as s:
        rows = {r.order_id: r for r in s.scalars(select(Order).where(Order.site_id == site_id,
                                                                     Order.order_id.in_(order_ids)))}
        return [result_json(hq, s, rows[i], replayed=False) for i in order_ids if i in rows]


def purge_keys(hq: "HQ") -> int:
    with hq.session() as s:
        return s.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < utcnow())).rowcount or 0
