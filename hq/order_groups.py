"""Order requests that arrive together are decided together (group commit).

A `POST /v1/orders` costs two transactions (claim its Idempotency-Key, decide) and about ten
statements however few orders it carries, and a batch of 200 costs about as many: sites that
send their orders one or a few at a time pay per order what a batch pays once. So requests
that arrive while another is being decided wait for it and are then decided as one batch by
one of them, whichever sites they come from: one claim of all their keys, one
`hq.batch.decide_new` transaction (each order under its own site's licence, limits and
counts), each key finished with its own orders. Nothing waits on a timer: a request alone is
decided at once; a group forms only of requests that would have queued for the database anyway.

A group never changes an answer. The batch decides its orders in arrival order, each counting
the earlier ones, as one request after another would be decided. Whatever is unusual steps
back to the per-request path (`hq.orders`), which answers exactly as before: a key that is
not new (a replay, in flight, another body) or named twice, an order HQ already knows, a
race with another writer, a refusal of one request's body.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
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
_MADE = threading.Lock()
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
    """The requests waiting in this process, the first of them deciding (one group at a time)."""

    def __init__(self, hq: "HQ") -> None:
        self._hq = hq
        self._lock = threading.Lock()
        self._waiting: deque[_Request] = deque()

    def submit(self, ctx: SiteContext, key: str, batch: OrderBatch) -> Results:
        """What `hq.orders.submit` answers for this request, decided with whatever arrived with it."""
        if not self._hq.settings.order_groups:  # KIT_HQ_ORDER_GROUPS=false: each request on its own
            return orders.submit(self._hq, ctx, key, batch)
        orders.refuse_invalid(batch)  # a body no decision may take joins no group
        request = _Request(ctx, key, batch)
        with self._lock:
            self._waiting.append(request)
            request.leads = len(self._waiting) == 1  # nobody deciding: this one does
        if not request.leads:
            request.answered.wait()
        if request.leads:
            self._lead()
        if request.error is not None:
            raise request.error
        assert request.results is not None
        return request.results, request.replayed

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _lead(self) -> None:
        """Decide one group (this request and those queued behind it), then hand on the lead or end it."""
        with self._lock:
            group = _take(self._waiting)
        metrics().order_groups.observe(len(group))
        try:
            decide_group(self._hq, group)
        except BaseException as exc:  # noqa: BLE001 - e.g. the claim found no database: each request fails alike
            for request in group:
                if request.results is None and request.error is None:
                    request.error = exc
        finally:
            with self._lock:
                for request in group:
                    self._waiting.remove(request)
                following = self._waiting[0] if self._waiting else None
                if following is not None:
                    following.leads = True
            for request in group:
                request.answered.set()
            if following is not None:
                following.answered.set()


def of(hq: "HQ") -> OrderGroups:
    """The one queue of this HQ (made on first use; kept on the HQ object, which this module may know and
    hq.service need not)."""
    with _MADE:
        groups = getattr(hq, "_order_groups", None)
        if groups is None:
            groups = OrderGroups(hq)
            setattr(hq, "_order_groups", groups)
        return groups


def _take(queue: deque[_Request]) -> list[_Request]:
    """The requests at the head of the queue, up to one batch's worth of orders (at least the first)."""
    group, count = [], 0
    for request in queue:
        count += len(request.batch.orders)
        if group and count > MAX_ORDERS:
            break
        group.append(request)
    return group


def decide_group(hq: "HQ", group: list[_Request]) -> None:
    """Answer every request of the group: together where nothing is unusual, else each on its own."""
    if len(group) == 1:
        alone = group[0]
        alone.answer(lambda: orders.submit(hq, alone.ctx, alone.key, alone.batch))
        return
    claimed = claim_new_keys(hq, group)
    together = [r for r in group if r in claimed]
    for request in group:
        if request not in claimed:  # a replay, a key in flight or used with another body, a key named twice
            request.answer(lambda r=request: orders.submit(hq, r.ctx, r.key, r.batch))
    if not together:
        return
    all_orders = [o for r in together for o in r.batch.orders]
    try:
        results = batches.decide_new(hq, [batches.Part(r.ctx, r.key, len(r.batch.orders)) for r in together],
                                     all_orders, [orders.order_hash(o) for o in all_orders])
    except (IntegrityError, ApiError):  # rolled back: a race, or one request's order known with another body
        results = None
    except BaseException as exc:  # the database or a gateway failed: every request of it fails alike
        for request in together:
            orders.release_key(hq, request.ctx.site_id, request.key)
            request.error = exc
        return
    if results is None:  # some orders were known: each request reads its own back
        for request in together:
            request.answer(lambda r=request: (_decide_each(hq, r), False))
        return
    start = 0
    for request in together:
        request.results, start = results[start:start + len(request.batch.orders)], start + len(request.batch.orders)


def _decide_each(hq: "HQ", request: _Request) -> list[dict[str, Any]]:
    try:
        return orders.decide_each(hq, request.ctx, request.key, request.batch)
    except BaseException:
        orders.release_key(hq, request.ctx.site_id, request.key)
        raise


def claim_new_keys(hq: "HQ", group: list[_Request]) -> set[_Request]:
    """Claim, in one statement, the keys of the group that HQ has never seen; the requests that got theirs.

    A key that exists already (or a second request naming the same site's key) is left for the
    per-request path, which replays it, refuses it or answers 409 as before."""
    first: dict[tuple[str, str], _Request] = {}
    for request in group:
        first.setdefault((request.ctx.site_id, request.key), request)
    now = utcnow()
    rows = [orders.claim_row(hq, site, key, orders.batch_hash(r.batch), now) for (site, key), r in first.items()]
    with hq.connection() as conn:
        got = conn.execute(_claim_if_new(conn.dialect.name), rows).all()
    return {first[(site, key)] for site, key in got}


@lru_cache(maxsize=2)
def _claim_if_new(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the keys it claimed, built once: SQLAlchemy sends the rows of one
    call as one multi-row statement (its "insertmanyvalues"), compiled once instead of once a group."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(IdempotencyKey).on_conflict_do_nothing().returning(IdempotencyKey.site_id, IdempotencyKey.key)
