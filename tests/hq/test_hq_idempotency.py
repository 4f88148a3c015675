"""HQ's Idempotency-Key rules with HQ's clock set by the test (times written out, not computed from settings).

A key is kept 7 days (the setting's default); the same key with the same
body replays the first answer, with another body is refused (422); while the
first request is in flight (up to 120 s) another gets 409, after that it takes
over; a request refused before it changed anything frees its key.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from hq import licences, orders
from hq.errors import ApiError
from hq.models import IdempotencyKey
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


def test_keys_are_per_site(hq, clock):
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    orders.submit(hq, CTX, "k", body("o1"))
    other, replayed = orders.submit(hq, orders.SiteContext("site-b", ("game",), ("CN",)), "k", body("o9"))
    assert not replayed and other[0]["order_id"] == "o9"


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
