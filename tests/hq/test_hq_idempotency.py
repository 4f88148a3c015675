"""HQ's Idempotency-Key rules with HQ's clock set by the test (times written out, not computed from settings).

A key is kept 7 days (the setting's default); the same key with the same
body replays the first answer, with another body is refused (422); while the
first request is in flight (up to 120 s) another gets 409, after that it takes
over; a request refused before it changed anything frees its key.
"""

from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hq import licences, orders
from hq.errors import ApiError
from hq.models import IdempotencyKey, Order
from hq.risk import Rules
from hq.schemas import OrderBatch
from hq.service import HQ
from tests.hq.helpers import open_hq, order

T0 = datetime(2025, 6, 15, 8, 0, 0, tzinfo=timezone.utc)
CTX = orders.SiteContext("site-a", ("game",), ("CN",))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:  # type: ignore[no-untyped-def]
    c = Clock()
    monkeypatch.setattr(orders, "utcnow", c)
    return c


@pytest.fixture
def hq(tmp_path) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq", direct_topup="g", rules=Rules(velocity=[], foreign_region_action=None))
    yield service
    service.close()


def body(*ids: str) -> OrderBatch:
    return OrderBatch.model_validate({"orders": [{**order(i, sku="g"), "created_at": "2025-06-15T07:00:00Z"} for i in ids]})


def stored_key(hq: HQ, key: str) -> Any:
    with hq.session() as s:
        return s.scalar(select(IdempotencyKey).where(IdempotencyKey.key == key))


def test_a_key_replays_its_first_answer_and_is_kept_seven_days(hq, clock):
    first, replayed = orders.submit(hq, CTX, "k1", body("o1", "o2"))
    assert not replayed
    row = stored_key(hq, "k1")
    assert row.state == "done" and row.hq_order_ids == [r["hq_order_id"] for r in first]
    assert row.expires_at.replace(tzinfo=timezone.utc) == datetime(2025, 6, 22, 8, 0, 0, tzinfo=timezone.utc)
    again, replayed = orders.submit(hq, CTX, "k1", body("o1", "o2"))
    assert replayed and [r["hq_order_id"] for r in again] == [r["hq_order_id"] for r in first]
    assert all(r["replayed"] for r in again)
    with pytest.raises(ApiError) as conflict:
        orders.submit(hq, CTX, "k1", body("o1"))
    assert (conflict.value.status, conflict.value.code) == (422, "idempotency_conflict")


def test_purge_forgets_only_expired_keys(hq, clock):
    orders.submit(hq, CTX, "old", body("o1"))
    clock.now = T0 + timedelta(days=1)
    orders.submit(hq, CTX, "new", body("o2"))
    clock.now = datetime(2025, 6, 22, 8, 0, 0, tzinfo=timezone.utc)  # "old" expires now, not before
    assert orders.purge_keys(hq) == 0
    clock.now += timedelta(microseconds=1)
    assert orders.purge_keys(hq) == 1
    assert stored_key(hq, "old") is None and stored_key(hq, "new") is not None


def test_a_request_in_flight_holds_its_key_for_two_minutes(hq, clock):
    assert orders.claim_key(hq, "site-a", "k", "hash-1") is None
    clock.now = T0 + timedelta(seconds=119)
    with pytest.raises(ApiError) as busy:
        orders.claim_key(hq, "site-a", "k", "hash-1")
    assert (busy.value.status, busy.value.headers) == (409, {"Retry-After": "1"})
    with pytest.raises(ApiError) as other:
        orders.claim_key(hq, "site-a", "k", "hash-2")
    assert other.value.status == 422
    clock.now = T0 + timedelta(seconds=120)  # the first attempt died: this one takes over
    assert orders.claim_key(hq, "site-a", "k", "hash-1") is None
    assert stored_key(hq, "k").created_at.replace(tzinfo=timezone.utc) == clock.now
    clock.now += timedelta(seconds=119)
    with pytest.raises(ApiError):
        orders.claim_key(hq, "site-a", "k", "hash-1")


def test_a_key_released_between_its_insert_and_its_read_is_claimed_afresh(hq, clock, monkeypatch):
    """The insert met another request's row (a unique violation), and that request was refused and released the key
    before this one read it: this request then holds the key itself, in flight, with its own body and HQ's times."""

    @contextmanager
    def taken() -> Iterator[None]:  # the claim's INSERT, as it fails when another request holds the key
        raise IntegrityError("INSERT INTO idempotency_keys", {}, Exception("UNIQUE constraint failed"))
        yield

    monkeypatch.setattr(hq, "connection", taken)
    clock.now = T0 + timedelta(seconds=30)
    assert orders.claim_key(hq, "site-a", "k", "hash-1") is None
    row = stored_key(hq, "k")
    assert (row.site_id, row.key, row.request_sha256, row.state, row.hq_order_ids) == (
        "site-a", "k", "hash-1", "in_flight", None)
    assert [t.replace(tzinfo=timezone.utc) for t in (row.created_at, row.expires_at)] == [
        datetime(2025, 6, 15, 8, 0, 30, tzinfo=timezone.utc), datetime(2025, 6, 22, 8, 0, 30, tzinfo=timezone.utc)]
    with pytest.raises(ApiError) as busy:  # and it holds the key: the next request with it waits
        orders.claim_key(hq, "site-a", "k", "hash-1")
    assert busy.value.status == 409


def test_the_refusals_of_a_key_say_why(hq, clock):
    """The texts a site's operator reads in the agent's log, written out."""
    assert orders.claim_key(hq, "site-a", "k", "hash-1") is None
    with pytest.raises(ApiError) as busy:
        orders.claim_key(hq, "site-a", "k", "hash-1")
    assert (busy.value.code, busy.value.detail) == (
        "idempotency_in_flight", "a request with this Idempotency-Key is still being processed")
    with pytest.raises(ApiError) as other:
        orders.claim_key(hq, "site-a", "k", "hash-2")
    assert (other.value.code, other.value.detail) == (
        "idempotency_conflict", "this Idempotency-Key was used with a different body")


def with_total(order_id: str, quantity: int, total: int | None) -> dict[str, Any]:
    return {**order(order_id, sku="g", quantity=quantity), "total_cents": total, "created_at": "2025-06-15T07:00:00Z"}


def test_a_batch_naming_an_order_twice_or_charging_above_list_price_is_refused_before_its_key_is_claimed(hq, clock):
    """unit_price_cents is 9900 (tests.hq.helpers.order): two at list price are 19,800; one cent more is refused,
    naming the order's place in the batch; the list price itself or less is charged as sent."""
    refusals = [
        ([with_total("o1", 1, None), with_total("o2", 1, None), with_total("o1", 1, None)],
         (422, "duplicate_order_id", "orders: the batch lists the same order_id twice")),
        ([with_total("o1", 1, None), with_total("o2", 2, 19_801)],
         (422, "total_above_list_price", "orders.1.total_cents: more than unit_price_cents × quantity")),
    ]
    for items, expected in refusals:
        with pytest.raises(ApiError) as refused:
            orders.submit(hq, CTX, "k", OrderBatch.model_validate({"orders": items}))
        assert (refused.value.status, refused.value.code, refused.value.detail) == expected
        assert stored_key(hq, "k") is None and stored_order(hq, "o1") is None
    results, _ = orders.submit(hq, CTX, "k", OrderBatch.model_validate(
        {"orders": [with_total("o1", 2, 19_800), with_total("o2", 2, 19_799)]}))
    assert [r["status"] for r in results] == ["delivered", "delivered"]
    assert [stored_order(hq, i).total_cents for i in ("o1", "o2")] == [19_800, 19_799]


def test_keys_are_per_site(hq, clock):
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    orders.submit(hq, CTX, "k", body("o1"))
    other, replayed = orders.submit(hq, orders.SiteContext("site-b", ("game",), ("CN",)), "k", body("o9"))
    assert not replayed and other[0]["order_id"] == "o9"
    for ctx, order_id in ((orders.SiteContext("site-b", ("game",), ("CN",)), "o9"), (CTX, "o1")):
        again, replayed = orders.submit(hq, ctx, "k", body(order_id))  # each site's key replays its own answer
        assert replayed and [r["order_id"] for r in again] == [order_id]


def test_a_refused_request_frees_its_key(hq, clock):
    with pytest.raises(ApiError) as twice:
        orders.submit(hq, CTX, "k", body("o1", "o1"))
    assert twice.value.status == 422 and stored_key(hq, "k") is None  # refused before claiming
    orders.submit(hq, CTX, "k0", body("o1"))
    changed = OrderBatch.model_validate({"orders": [{**order("o1", sku="g", quantity=2), "created_at": "2025-06-15T07:00:00Z"}]})
    with pytest.raises(ApiError) as conflict:
        orders.submit(hq, CTX, "k", changed)
    assert conflict.value.status == 422 and stored_key(hq, "k") is None  # released: nothing was changed
    result, replayed = orders.submit(hq, CTX, "k", body("o2"))
    assert not replayed and result[0]["order_id"] == "o2"


def test_release_keeps_a_finished_key(hq, clock):
    orders.submit(hq, CTX, "k", body("o1"))
    orders.release_key(hq, "site-a", "k")
    assert stored_key(hq, "k").state == "done"


def test_release_forgets_only_that_sites_key(hq, clock):
    for site, key in (("site-a", "k"), ("site-b", "k"), ("site-a", "k2")):
        assert orders.claim_key(hq, site, key, "h") is None
    orders.release_key(hq, "site-a", "k")
    with hq.session() as s:
        left = sorted((r.site_id, r.key) for r in s.scalars(select(IdempotencyKey)))
    assert left == [("site-a", "k2"), ("site-b", "k")]


# The order "o1" of body("o1") as canonical JSON: keys sorted, no whitespace, times as the site sent them.
O1_JSON = (b'{"buyer":{"account":"player-1","contact":"buyer@example.cn","ip":"198.51.100.7","region":"CN"},'
           b'"created_at":"2025-06-15T07:00:00Z","currency":"CNY","order_id":"o1","quantity":1,"sku":"g",'
           b'"unit_price_cents":9900}')


def stored_order(hq: HQ, order_id: str) -> Any:
    with hq.session() as s:
        return s.scalar(select(Order).where(Order.site_id == CTX.site_id, Order.order_id == order_id))


def test_bodies_are_known_by_the_sha256_of_their_canonical_json(hq, clock):
    """The hashes are stored (keys for 7 days, orders for good) and compared after an HQ upgrade: their form is fixed."""
    assert orders.body_hash({"b": [1, 2], "a": {"d": None, "c": "x"}}) == hashlib.sha256(
        b'{"a":{"c":"x","d":null},"b":[1,2]}').hexdigest()
    orders.submit(hq, CTX, "k1", body("o1"))
    assert stored_key(hq, "k1").request_sha256 == hashlib.sha256(b'{"orders":[' + O1_JSON + b"]}").hexdigest()
    orders.submit(hq, CTX, "k2", body("o1", "o2"))  # a known order id: the per-order path
    assert stored_order(hq, "o1").request_sha256 == hashlib.sha256(O1_JSON).hexdigest()
    assert stored_order(hq, "o2").request_sha256 == hashlib.sha256(O1_JSON.replace(b'"o1"', b'"o2"')).hexdigest()


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_a_decided_order_is_stored_whole_and_stamped_with_hqs_clock(hq, clock, monkeypatch, path):
    """Every column as written out here, on both paths (a batch of new orders; a batch holding a known order)."""
    from hq import batch as batches

    monkeypatch.setattr(batches, "utcnow", clock)
    if path == "per-order":
        orders.submit(hq, CTX, "k0", body("o0"))
    clock.now = T0 + timedelta(minutes=5)
    results, replayed = orders.submit(hq, CTX, "k1", body("o0", "o1") if path == "per-order" else body("o1"))
    assert replayed is False and results[-1]["replayed"] is False
    assert re.fullmatch(r"hq_[0-9a-f]{32}", results[-1]["hq_order_id"])
    row = stored_order(hq, "o1")
    at = datetime(2025, 6, 15, 8, 5, 0, tzinfo=timezone.utc)
    assert {c: getattr(row, c) for c in (
        "hq_order_id", "site_id", "order_id", "request_sha256", "sku", "quantity", "unit_price_cents",
        "hq_price_cents", "currency", "buyer_account", "buyer_contact", "buyer_ip", "buyer_region", "decision",
        "status", "reasons", "decided_by")} == {
        "hq_order_id": results[-1]["hq_order_id"], "site_id": "site-a", "order_id": "o1",
        "request_sha256": hashlib.sha256(O1_JSON).hexdigest(), "sku": "g", "quantity": 1, "unit_price_cents": 9900,
        "hq_price_cents": 90, "currency": "CNY", "buyer_account": "player-1", "buyer_contact": "buyer@example.cn",
        "buyer_ip": "198.51.100.7", "buyer_region": "CN", "decision": "approve", "status": "delivered",
        "reasons": [], "decided_by": "risk-engine"}
    stamps = [row.site_created_at, row.received_at, row.decided_at]
    assert [t.replace(tzinfo=timezone.utc) for t in stamps] == [datetime(2025, 6, 15, 7, 0, 0, tzinfo=timezone.utc),
                                                               at, at]
