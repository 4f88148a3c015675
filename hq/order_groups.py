"""Order requests of one site that arrive together are decided together (group commit).

A `POST /v1/orders` costs two transactions (claim its Idempotency-Key, decide) and about ten
statements however few orders it carries, and a batch of 200 costs about as many: a site that
sends its orders one by one (the reseller API, the payment path) pays per order what a batch
pays once. So requests of the same site (same licence scope) that arrive while one of them is
being decided wait for it and are then decided as one batch by one of them: one claim of all
their keys, one `hq.batch.decide_new` transaction, each key finished with its own orders.
Nothing waits on a timer: a request alone is decided at once; a group forms only of requests
that would have queued for the database anyway.

A group never changes an answer. The batch decides its orders in arrival order, each counting
the earlier ones, as one request after another would be decided. Whatever is unusual steps
back to the per-request path (`hq.orders`), which answers exactly as before: a key that is
not new (a replay, in flight, another body) or named twice, an order HQ already knows, a
race with another writer, a refusal of one request's body.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import timedelta
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy.exc import IntegrityError

from hq import batch as batches
from hq import orders
from hq.clock import utcnow
from hq.errors import ApiError
from hq.metrics import metrics
from hq.models import IdempotencyKey
from hq.order_checks import SiteContext
from hq.schemas import OrderBatch

if TYPE_CHECKING:
    from hq.service import HQ

MAX_ORDERS = 200  # a group is at most one batch's worth (OrderBatch's limit)
Results = tuple[list[dict[str, Any]], bool]


@dataclass(eq=False)
class _Request:
    ctx: SiteContext
    key: str
    batch: OrderBatch
    answered: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # woken to decide the next group, not with its answer
    results: list[dict[str, Any]] | None = None
    replayed: bool = False
    error: BaseException | None = None

    def answer(self, call: Callable[[], Results]) -> None:
        try:
            self.results, self.replayed = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the request's own thread, raised there
            self.error = exc


class OrderGroups:
    """The requests waiting per licence scope, and whether one of them is deciding (one per scope)."""

    def __init__(self, hq: "HQ") -> None:
        self._hq = hq
        self._lock = threading.Lock()
        self._waiting: dict[SiteContext, deque[_Request]] = {}

    def submit(self, ctx: SiteContext, key: str, batch: OrderBatch) -> Results:
        """What `hq.orders.submit` answers for this request, decided with whatever arrived with it."""
        if not self._hq.settings.order_groups:  # KIT_HQ_ORDER_GROUPS=false: each request on its own
            return orders.submit(self._hq, ctx, key, batch)
        orders.refuse_invalid(batch)  # a body no decision may take joins no group
        request = _Request(ctx, key, batch)
        with self._lock:
            queue = self._waiting.setdefault(ctx, deque())
            queue.append(request)
            request.leads = len(queue) == 1  # nobody deciding: this one does
        if not request.leads:
            request.answered.wait()
        if request.leads:
            self._lead(ctx)
        if request.error is not None:
            raise request.error
        assert request.results is not None
        return request.results, request.replayed

    def _lead(self, ctx: SiteContext) -> None:
        """Decide one group (this request and those queued behind it), then hand on the lead or end it."""
        with self._lock:
            group = _take(self._waiting[ctx])
        metrics().order_groups.observe(len(group))
        try:
            decide_group(self._hq, ctx, group)
        except BaseException as exc:  # noqa: BLE001 - e.g. the claim found no database: each request fails alike
            for request in group:
                if request.results is None and request.error is None:
                    request.error = exc
        finally:
            with self._lock:
                queue = self._waiting[ctx]
                for request in group:
                    queue.remove(request)
                following = queue[0] if queue else None
                if following is None:
                    del self._waiting[ctx]
                else:
                    following.leads = True
            for request in group:
                request.answered.set()
            if following is not None:
                following.answered.set()


def _take(queue: deque[_Request]) -> list[_Request]:
    """The requests at the head of the queue, up to one batch's worth of orders (at least the first)."""
    group, count = [], 0
    for request in queue:
        count += len(request.batch.orders)
        if group and count > MAX_ORDERS:
            break
        group.append(request)
    return group


def decide_group(hq: "HQ", ctx: SiteContext, group: list[_Request]) -> None:
    """Answer every request of the group: together where nothing is unusual, else each on its own."""
    if len(group) == 1:
        group[0].answer(lambda: orders.submit(hq, ctx, group[0].key, group[0].batch))
        return
    claimed = claim_new_keys(hq, ctx.site_id, group)
    together = [r for r in group if r in claimed]
    for request in group:
        if request not in claimed:  # a replay, a key in flight or used with another body, a key named twice
            request.answer(lambda r=request: orders.submit(hq, ctx, r.key, r.batch))
    if not together:
        return
    all_orders = [o for r in together for o in r.batch.orders]
    try:
        results = batches.decide_new(hq, ctx, [(r.key, len(r.batch.orders)) for r in together], all_orders,
                                     [orders.order_hash(o) for o in all_orders])
    except (IntegrityError, ApiError):  # rolled back: a race, or one request's order known with another body
        results = None
    except BaseException as exc:  # the database or a gateway failed: every request of it fails alike
        for request in together:
            orders.release_key(hq, ctx.site_id, request.key)
            request.error = exc
        return
    if results is None:  # some orders were known: each request reads its own back
        for request in together:
            request.answer(lambda r=request: (_decide_each(hq, ctx, r), False))
        return
    start = 0
    for request in together:
        request.results, start = results[start:start + len(request.batch.orders)], start + len(request.batch.orders)


def _decide_each(hq: "HQ", ctx: SiteContext, request: _Request) -> list[dict[str, Any]]:
    try:
        return orders.decide_each(hq, ctx, request.key, request.batch)
    except BaseException:
        orders.release_key(hq, ctx.site_id, request.key)
        raise


def claim_new_keys(hq: "HQ", site_id: str, group: list[_Request]) -> set[_Request]:
    """Claim, in one statement, the keys of the group that HQ has never seen; the requests that got theirs.

    A key that exists already (or a second request naming the same key) is left for the per-request
    path, which replays it, refuses it or answers 409 as before."""
    first: dict[str, _Request] = {}
    for request in group:
        first.setdefault(request.key, request)
    now = utcnow()
    expires = now + timedelta(days=hq.settings.idempotency_retention_days)
    rows = [{"site_id": site_id, "key": key, "request_sha256": orders.batch_hash(r.batch), "state": "in_flight",
             "created_at": now, "expires_at": expires} for key, r in first.items()]
    with hq.connection() as conn:
        insert = _insert_if_new(conn.dialect.name)
        got = set(conn.execute(insert.values(rows).on_conflict_do_nothing().returning(IdempotencyKey.key)).scalars())
    return {first[key] for key in got}


def _insert_if_new(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(IdempotencyKey)
