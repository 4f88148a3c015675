"""Order forwarding: the storefront's `pending` orders → HQ's risk engine → decisions back.

At-least-once to HQ, exactly-once in effect: HQ deduplicates by (site,
order id) and by the batch's Idempotency-Key, and the agent writes a decision
only onto a row that is still `pending` (or `review`), so a crash between
HQ's answer and our commit just replays the same decision. Nothing is ever
dropped: a failed order stays pending with a later next attempt.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from agent.hq_client import HQClient, HQError, OrderResult, plain
from agent.metrics import AgentMetrics
from agent.state import as_utc, utcnow
from sitedb.models import AuditEntry, Order
from sitedb.sealing import seal

log = logging.getLogger("agent.outbox")
FINAL = ("delivered", "rejected")
PUBLIC_REASON = {"rejected": "declined by HQ risk control", "review": "under review by HQ risk control"}


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [½·d, d], d = min(cap, base·2^attempt)."""
    delay = min(cap, base * (2 ** min(attempt, 32)))
    return delay * (0.5 + 0.5 * (rng or random).random())


def idempotency_key(site_id: str, order_ids: list[str]) -> str:
    """Derived from the site and the batch's order ids: the same batch always has the same key."""
    digest = hashlib.sha256("\n".join([site_id, *order_ids]).encode()).hexdigest()
    return f"{site_id}-{digest[:40]}"


def order_payload(order: Order) -> dict[str, Any]:
    """The body HQ sees; deterministic, so a resent order has exactly the same body."""
    created = as_utc(order.created_at) or utcnow()
    return {
        "order_id": order.id,
        "sku": order.sku,
        "quantity": order.quantity,
        "unit_price_cents": order.unit_price_cents,
        "currency": order.currency,
        "buyer": {"account": order.buyer_account, "contact": order.buyer_contact,
                  "ip": order.buyer_ip, "region": order.buyer_region},
        "created_at": created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


@dataclass
class ForwardOutcome:
    sent: int = 0
    decided: int = 0
    missing: int = 0

    @property
    def contacted_hq(self) -> bool:
        return self.sent > 0


class Forwarder:
    """Moves orders between the outbox and HQ; every call does one bounded unit of work."""

    def __init__(self, engine: Engine, client: HQClient, metrics: AgentMetrics, site_id: str,
                 site_key: bytes, batch: int = 200, backoff_base: float = 1.5, backoff_cap: float = 300.0,
                 review_poll: float = 30.0,
                 emit: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.engine = engine
        self.client = client
        self.metrics = metrics
        self.site_id = site_id
        self.site_key = site_key
        self.batch = batch
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.review_poll = review_poll
        self.emit = emit or (lambda event, payload: None)

    # -- forwarding -------------------------------------------------------------
    def due_orders(self, limit: int) -> list[Order]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(
                select(Order).where(Order.status == "pending", Order.next_attempt_at <= utcnow())
                .order_by(Order.created_at, Order.id).limit(limit)
            ))

    def forward_once(self) -> ForwardOutcome:
        """Send one batch of due orders; raises HQError when HQ could not answer."""
        orders = self.due_orders(self.batch)
        if not orders:
            return ForwardOutcome()
        try:
            results = self._submit(orders)
        except HQError as exc:
            self._postpone(orders, exc)
            raise
        outcome = ForwardOutcome(sent=len(orders))
        outcome.decided = self._store_results(results, from_status="pending")
        answered = {r.order_id for r in results}
        unanswered = [o for o in orders if o.id not in answered]
        if unanswered:
            outcome.missing = len(unanswered)
            self._postpone(unanswered, None, "HQ gave no result for this order")
        return outcome

    def _submit(self, orders: list[Order]) -> list[OrderResult]:
        """One batch; on an idempotency conflict, each order alone, to isolate the odd one."""
        self.metrics.forward_batch_size.observe(len(orders))
        key = idempotency_key(self.site_id, [o.id for o in orders])
        try:
            return self.client.submit_orders([order_payload(o) for o in orders], key)
        except HQError as exc:
            if exc.kind != "conflict" or exc.status != 422 or len(orders) == 1:
                raise
        results: list[OrderResult] = []
        for order in orders:
            try:
                results += self.client.submit_orders([order_payload(order)],
                                                     idempotency_key(self.site_id, [order.id]))
            except HQError as exc:
                if exc.kind != "conflict":
                    raise
                self._postpone([order], exc, max_backoff=True)
                log.error("HQ refuses an order as conflicting with an earlier one; kept pending",
                          extra={"order_id": order.id, "detail": exc.detail})
        return results

    def _postpone(self, orders: list[Order], exc: HQError | None, why: str | None = None,
                  max_backoff: bool = False) -> None:
        """Count the attempt and set each order's next attempt (never drop it)."""
        why = (why or (f"{exc.kind}: {exc.detail}" if exc else "retry"))[:200]
        now = utcnow()
        with Session(self.engine) as session, session.begin():
            for order in orders:
                attempt = order.attempts + 1
                delay = self.backoff_cap if max_backoff else backoff_seconds(attempt, self.backoff_base,
                                                                              self.backoff_cap)
                session.execute(
                    update(Order).where(Order.id == order.id, Order.status == "pending")
                    .values(attempts=attempt, last_error=why, next_attempt_at=now + timedelta(seconds=delay))
                )

    # -- decisions ----------------------------------------------------------------
    def _store_results(self, results: list[OrderResult], from_status: str) -> int:
        """Write each decision onto its row if the row is still in `from_status` (one transaction)."""
        by_id = {r.order_id: r for r in results}
        now = utcnow()
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            rows = list(session.scalars(
                select(Order).where(Order.id.in_(list(by_id)), Order.status == from_status)
                .with_for_update()
            )) if by_id else []
            decided = [o for o in rows if not (by_id[o.id].status == from_status == "review")]
            for order in rows:
                result = by_id[order.id]
                if order in decided:
                    self._apply(order, result, now)
                else:  # still under review: look again later
                    order.next_attempt_at = now + timedelta(seconds=self._review_delay(order))
                    order.attempts += 1
            if decided:
                session.execute(insert(AuditEntry), [
                    {"actor": "agent", "action": "order_decided", "at": now,
                     "detail": {"order_id": o.id, "status": o.status, "decision": o.decision}} for o in decided])
        for order in decided:
            if from_status == "pending":
                self.metrics.orders_forwarded.labels(by_id[order.id].decision).inc()
            else:
                self.metrics.reviews_resolved.labels(order.status).inc()
            self.emit("order_decided", _event(order))
        return len(decided)

    def _apply(self, order: Order, result: OrderResult, now: datetime) -> None:
        order.status = result.status
        order.decision = result.decision
        order.reasons = list(result.reasons)[:20]
        order.hq_order_id = result.hq_order_id
        order.public_reason = PUBLIC_REASON.get(result.status)
        order.last_error = None
        if result.delivery is not None and result.delivery.card_keys:
            order.delivery_sealed = seal(self.site_key, plain(result.delivery))
        if result.status in FINAL:
            order.decided_at = now
        else:
            order.attempts = 0
            order.next_attempt_at = now + timedelta(seconds=self.review_poll)

    def _review_delay(self, order: Order) -> float:
        return backoff_seconds(order.attempts, self.review_poll, max(self.review_poll, self.backoff_cap))

    # -- reviews ------------------------------------------------------------------
    def poll_reviews_once(self, limit: int = 50) -> int:
        """Ask HQ about orders under review whose poll is due; returns how many were resolved."""
        with Session(self.engine, expire_on_commit=False) as session:
            due = list(session.scalars(
                select(Order).where(Order.status == "review", Order.next_attempt_at <= utcnow())
                .order_by(Order.next_attempt_at).limit(limit)
            ))
        results: list[OrderResult] = []
        try:
            for order in due:
                results.append(self.client.order_status(order.id))
        finally:  # what HQ did answer is kept even when a later request fails
            resolved = self._store_results(results, from_status="review") if results else 0
        return resolved


def oldest_pending_age(engine: Engine) -> tuple[int, int, float]:
    """(pending count, review count, age in seconds of the oldest pending order)."""
    from sqlalchemy import func

    with Session(engine) as session:
        counts = dict(session.execute(
            select(Order.status, func.count()).where(Order.status.in_(("pending", "review")))
            .group_by(Order.status)
        ).all())
        oldest = session.execute(select(func.min(Order.created_at)).where(Order.status == "pending")).scalar()
    age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
    return counts.get("pending", 0), counts.get("review", 0), max(age, 0.0)


def _event(order: Order) -> dict[str, Any]:
    """What plugins learn of a decision: no card keys, no password hash."""
    return {"order_id": order.id, "sku": order.sku, "category": order.category, "quantity": order.quantity,
            "total_cents": order.total_cents, "currency": order.currency, "status": order.status,
            "decision": order.decision, "buyer_contact": order.buyer_contact}
