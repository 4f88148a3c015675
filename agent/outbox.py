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
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Collection

from sqlalchemy import Connection, Engine, Row, bindparam, func, select, update

from agent.decisions import decision_writer, orders_t
from agent.hq_client import HQClient, HQError, OrderResult, plain
from agent.metrics import AgentMetrics
from agent.state import as_utc, utcnow
from sitedb.buyer import BuyerBox
from sitedb.sealing import sealer

log = logging.getLogger("agent.outbox")
FINAL = ("delivered", "rejected", "expired", "refunded")
PUBLIC_REASON = {"rejected": "declined by HQ risk control", "review": "under review by HQ risk control",
                 "expired": "not paid in time", "refunded": "payment refunded"}
WAITING = ("review", "pending_payment")  # HQ has the order; the agent asks again until it is final


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: uniform in [½·d, d], d = min(cap, base·2^attempt)."""
    delay = min(cap, base * (2 ** min(attempt, 32)))
    return delay * (0.5 + 0.5 * (rng or random).random())


def idempotency_key(site_id: str, order_ids: list[str]) -> str:
    """Derived from the site and the batch's order ids: the same batch always has the same key."""
    digest = hashlib.sha256("\n".join([site_id, *order_ids]).encode()).hexdigest()
    return f"{site_id}-{digest[:40]}"


OUTBOX_COLUMNS = tuple(orders_t.c[name] for name in (
    "id", "sku", "quantity", "unit_price_cents", "total_cents", "currency", "buyer_sealed", "buyer_region", "created_at",
    "attempts"))


def order_payload(order: Any, buyers: BuyerBox) -> dict[str, Any]:
    """The body HQ sees; deterministic, so a resent order has exactly the same body.

    The buyer's contact, account and IP are opened from the row's sealed box (ValueError when it
    does not open with this site key)."""
    created = as_utc(order.created_at) or utcnow()
    buyer = buyers.open(order.id, order.buyer_sealed)
    return {
        "order_id": order.id,
        "sku": order.sku,
        "quantity": order.quantity,
        "unit_price_cents": order.unit_price_cents,
        "total_cents": order.total_cents,  # what the buyer was shown: the discount taken off, HQ charges this
        "currency": order.currency,
        "buyer": {"account": buyer.account, "contact": buyer.contact, "ip": buyer.ip, "region": order.buyer_region},
        "created_at": created.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


@dataclass
class ForwardOutcome:
    sent: int = 0
    decided: int = 0
    missing: int = 0
    more: bool = False  # full batches were still coming when the burst reached its bound

    @property
    def contacted_hq(self) -> bool:
        return self.sent > 0


class Forwarder:
    """Moves orders between the outbox and HQ; every call does one bounded unit of work."""

    def __init__(self, engine: Engine, client: HQClient, metrics: AgentMetrics, site_id: str,
                 site_key: bytes, batch: int = 200, backoff_base: float = 1.5, backoff_cap: float = 300.0,
                 review_poll: float = 30.0, payment_poll: float = 2.0,
                 emit: Callable[[str, dict[str, Any]], None] | None = None,
                 wants: Callable[[str], bool] | None = None) -> None:
        self.engine = engine
        self.client = client
        self.metrics = metrics
        self.site_id = site_id
        self.seal = sealer(site_key)
        self.buyers = BuyerBox(site_key)
        self._held: set[str] = set()  # ids `_payloads` kept back (their buyer box does not open)
        self._held_lock = threading.Lock()  # the sender thread adds, `store` takes its own batch's ids
        self.batch = batch
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.review_poll = review_poll
        self.payment_poll = payment_poll
        self.emit = emit or (lambda event, payload: None)
        self.wants = wants or (lambda event: emit is not None)
        self.decisions = decision_writer(engine)
        self._pool: ThreadPoolExecutor | None = None

    # -- forwarding -------------------------------------------------------------
    def due_orders(self, limit: int, exclude: Collection[str] = ()) -> list[Row[Any]]:
        """The oldest due pending orders (the columns HQ needs), leaving out ids in `exclude`."""
        query = (select(*OUTBOX_COLUMNS).where(orders_t.c.status == "pending", orders_t.c.next_attempt_at <= utcnow())
                 .order_by(orders_t.c.created_at, orders_t.c.id).limit(limit))
        if exclude:
            query = query.where(orders_t.c.id.not_in(list(exclude)))
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def forward_burst(self, keep_going: Callable[[], bool] = lambda: True, max_batches: int = 25) -> ForwardOutcome:
        """Forward due orders batch after batch, the next batch at HQ while this one's answers are written.

        Exactly once still holds: the next batch leaves out the orders whose answers are being
        written (they are still `pending`), HQ deduplicates per order id anyway, and a decision
        only lands on a row still `pending`. When `keep_going()` turns false (SIGTERM) no new
        batch is sent; the one in flight is finished. Raises HQError when HQ could not answer.
        """
        total = ForwardOutcome()
        orders = self.due_orders(self.batch)
        if not orders:
            return total
        in_flight = self._sender().submit(self.submit, orders)
        for sent_batches in range(1, max_batches + 1):
            results = in_flight.result()
            following: list[Row[Any]] = []
            if len(orders) == self.batch and sent_batches < max_batches and keep_going():
                following = self.due_orders(self.batch, exclude={o.id for o in orders})
            if following:
                in_flight = self._sender().submit(self.submit, following)
            try:
                outcome = self.store(orders, results)
            except BaseException:
                if following:  # let the request in flight end; its orders stay pending and are sent again
                    wait([in_flight])
                raise
            total.sent, total.decided = total.sent + outcome.sent, total.decided + outcome.decided
            total.missing += outcome.missing
            if not following:
                total.more = len(orders) == self.batch and sent_batches == max_batches
                return total
            orders = following
        return total

    def _sender(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward-send")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def forward_once(self) -> ForwardOutcome:
        """Send one batch of due orders; raises HQError when HQ could not answer."""
        orders = self.due_orders(self.batch)
        if not orders:
            return ForwardOutcome()
        return self.store(orders, self.submit(orders))

    def submit(self, orders: list[Row[Any]]) -> list[OrderResult]:
        """One batch to HQ; on failure the batch's orders are postponed (never dropped) and HQError raised."""
        try:
            return self._submit(orders)
        except HQError as exc:
            self._postpone(orders, exc)
            raise

    def store(self, orders: list[Row[Any]], results: list[OrderResult]) -> ForwardOutcome:
        """Write HQ's answers for `orders`; orders HQ did not answer for are tried again later."""
        outcome = ForwardOutcome(sent=len(orders))
        outcome.decided = self._store_results(results, from_status="pending")
        answered = {r.order_id for r in results}
        with self._held_lock:
            held = self._held.intersection(o.id for o in orders)
            self._held -= held
        unanswered = [o for o in orders if o.id not in answered and o.id not in held]
        if unanswered:
            outcome.missing = len(unanswered)
            self._postpone(unanswered, None, "HQ gave no result for this order")
        return outcome

    def _payloads(self, orders: list[Row[Any]]) -> tuple[list[Row[Any]], list[dict[str, Any]]]:
        """The orders that can be sent and their bodies. An order whose buyer box does not open (another
        site key, a damaged row) is never sent half-empty: it waits, at the longest backoff, with its error."""
        sendable, payloads, unopened = [], [], []
        for order in orders:
            try:
                payloads.append(order_payload(order, self.buyers))
                sendable.append(order)
            except ValueError:
                unopened.append(order)
        if unopened:
            with self._held_lock:
                self._held.update(o.id for o in unopened)
            self._postpone(unopened, None, "buyer data does not open with the site key", max_backoff=True)
            log.error("orders whose buyer data does not open with the site key are kept pending",
                      extra={"orders": len(unopened)})
        return sendable, payloads

    def _submit(self, orders: list[Row[Any]]) -> list[OrderResult]:
        """One batch; on an idempotency conflict, each order alone, to isolate the odd one."""
        orders, payloads = self._payloads(orders)
        if not orders:
            return []
        self.metrics.forward_batch_size.observe(len(orders))
        key = idempotency_key(self.site_id, [o.id for o in orders])
        try:
            return self.client.submit_orders(payloads, key)
        except HQError as exc:
            if exc.kind != "conflict" or exc.status != 422 or len(orders) == 1:
                raise
        results: list[OrderResult] = []
        for order, payload in zip(orders, payloads):
            try:
                results += self.client.submit_orders([payload], idempotency_key(self.site_id, [order.id]))
            except HQError as exc:
                if exc.kind != "conflict":
                    raise
                self._postpone([order], exc, max_backoff=True)
                with self._held_lock:  # already postponed to the cap: store() must not postpone it again, shorter
                    self._held.add(order.id)
                log.error("HQ refuses an order as conflicting with an earlier one; kept pending",
                          extra={"order_id": order.id, "detail": exc.detail})
        return results

    def _postpone(self, orders: list[Row[Any]], exc: HQError | None, why: str | None = None,
                  max_backoff: bool = False) -> None:
        """Count the attempt and set each order's next attempt (never drop it)."""
        why = (why or (f"{exc.kind}: {exc.detail}" if exc else "retry"))[:200]
        now = utcnow()
        params = []
        for order in orders:
            attempt = order.attempts + 1
            delay = self.backoff_cap if max_backoff else backoff_seconds(attempt, self.backoff_base, self.backoff_cap)
            params.append({"b_id": order.id, "attempts": attempt, "next_attempt_at": now + timedelta(seconds=delay)})
        with self.engine.begin() as conn:
            conn.execute(update(orders_t).where(orders_t.c.id == bindparam("b_id"), orders_t.c.status == "pending")
                         .values(attempts=bindparam("attempts"), last_error=why,
                                 next_attempt_at=bindparam("next_attempt_at"), updated_at=now), params)

    def due_after_outage(self) -> int:
        """HQ answers again: orders held back only because it was unreachable are due now, not after back-off."""
        now = utcnow()
        unreachable = orders_t.c.last_error.like("connect:%") | orders_t.c.last_error.like("timeout:%")
        with self.engine.begin() as conn:
            return conn.execute(update(orders_t).where(orders_t.c.status == "pending",
                                                       orders_t.c.next_attempt_at > now, unreachable)
                                .values(next_attempt_at=now)).rowcount

    # -- decisions ----------------------------------------------------------------
    def _store_results(self, results: list[OrderResult], from_status: str) -> int:
        """Write each decision onto its row if the row is still in `from_status` (one transaction)."""
        now = utcnow()
        decided: list[dict[str, Any]] = []
        unchanged: list[str] = []
        for result in results:
            if result.status == from_status and from_status in WAITING:
                unchanged.append(result.order_id)
            else:
                decided.append(self._decision(result, now))
        with self.engine.begin() as conn:
            rows = self.decisions.write(conn, decided, from_status, now) if decided else []
            if unchanged:
                self._poll_later(conn, unchanged, from_status, now)
        by_id = {r.order_id: r for r in results}
        events = self.wants("order_decided")
        for row in rows:
            if from_status == "pending":
                self.metrics.orders_forwarded.labels(by_id[row.id].decision).inc()
            elif from_status == "review":
                self.metrics.reviews_resolved.labels(row.status).inc()
            else:
                self.metrics.payments_resolved.labels(row.status).inc()
            if events:
                self.emit("order_decided", self._event(row))
        return len(rows)

    def _decision(self, result: OrderResult, now: datetime) -> dict[str, Any]:
        """The values an order row takes from HQ's answer (None: keep the stored value)."""
        final = result.status in FINAL
        sealed = None
        if result.delivery is not None and result.delivery.card_keys:
            sealed = self.seal(plain(result.delivery))
        paying = result.status == "pending_payment"
        return {"id": result.order_id, "status": result.status, "decision": result.decision,
                "reasons": list(result.reasons)[:20], "hq_order_id": result.hq_order_id,
                "public_reason": PUBLIC_REASON.get(result.status), "delivery_sealed": sealed,
                "decided_at": now if final else None, "attempts": None if final else 0,
                "next_attempt_at": None if final else now + timedelta(
                    seconds=self.payment_poll if paying else self.review_poll),
                "payment": plain(result.payment) if paying and result.payment is not None else None}

    def _poll_later(self, conn: Connection, ids: list[str], status: str, now: datetime) -> None:
        """Orders HQ still reviews (backing off) or whose payment has not come (soon again: the buyer waits)."""
        rows = conn.execute(select(orders_t.c.id, orders_t.c.attempts)
                            .where(orders_t.c.id.in_(ids), orders_t.c.status == status)).all()
        if rows:
            conn.execute(update(orders_t).where(orders_t.c.id == bindparam("b_id"), orders_t.c.status == status)
                         .values(attempts=bindparam("attempts"), next_attempt_at=bindparam("next_attempt_at")),
                         [{"b_id": r.id, "attempts": r.attempts + 1,
                           "next_attempt_at": now + timedelta(seconds=self._poll_delay(status, r.attempts))}
                          for r in rows])

    def _poll_delay(self, status: str, attempts: int) -> float:
        if status == "pending_payment":
            return self.payment_poll
        return backoff_seconds(attempts, self.review_poll, max(self.review_poll, self.backoff_cap))

    def _event(self, order: Any) -> dict[str, Any]:
        """What plugins learn of a decision: the buyer's contact, no card keys, no password hash."""
        try:
            contact: str | None = self.buyers.open(order.id, order.buyer_sealed).contact
        except ValueError:
            contact = None
        return {"order_id": order.id, "sku": order.sku, "category": order.category, "quantity": order.quantity,
                "total_cents": order.total_cents, "currency": order.currency, "status": order.status,
                "decision": order.decision, "buyer_contact": contact}

    # -- reviews ------------------------------------------------------------------
    def poll_reviews_once(self, limit: int = 200) -> int:
        """Ask HQ about orders under review or awaiting payment whose poll is due (one request for them all;
        one per order from an HQ without the batch endpoint); how many changed."""
        with self.engine.connect() as conn:
            due = dict(conn.execute(
                select(orders_t.c.id, orders_t.c.status)
                .where(orders_t.c.status.in_(WAITING), orders_t.c.next_attempt_at <= utcnow())
                .order_by(orders_t.c.next_attempt_at).limit(limit)
            ).all())
        if not due:
            return 0
        results: list[OrderResult] = []
        try:
            try:
                results = self.client.orders_status(list(due))
            except HQError as exc:
                if exc.status not in (404, 405):
                    raise
                for order_id in due:  # an HQ from before `POST /v1/order-status`
                    results.append(self.client.order_status(order_id))
        finally:  # what HQ did answer is kept even when a later request fails
            resolved = 0
            for status in WAITING:
                mine = [r for r in results if due.get(r.order_id) == status]
                resolved += self._store_results(mine, from_status=status) if mine else 0
        return resolved


def oldest_pending_age(engine: Engine) -> tuple[int, int, float]:
    """(pending count, review count, age in seconds of the oldest pending order)."""
    status = orders_t.c.status
    with engine.connect() as conn:
        counts = dict(conn.execute(
            select(status, func.count()).where(status.in_(("pending", "review"))).group_by(status)
        ).all())
        oldest = conn.execute(select(func.min(orders_t.c.created_at)).where(status == "pending")).scalar()
    age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
    return counts.get("pending", 0), counts.get("review", 0), max(age, 0.0)
