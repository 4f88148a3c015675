"""hq.orders and hq.batch rule by rule, and hq.reviews (an operator's decision on a held order), called directly
on an in-process SQLite HQ (no server, no sleeps).

Each test's HQ is a copy of one prepared once per module (migrated, site-a licensed for games, `card-1` with the
four keys S0000..S0003 whose secrets are x0..x3), so the whole file runs in seconds: the mutation runner runs it
once per mutant. HQ's clock is set by the test; every expected value is written out, not derived from the code.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hq import batch as batches
from hq import inventory, licences, orders
from hq.errors import ApiError
from hq.models import CardKey, IdempotencyKey, LedgerEntry, Order
from hq.risk import parse_rules
from hq.schemas import OrderBatch, OrderIn
from hq.service import HQ
from tests.hq.helpers import copied_hq

T0 = datetime(2025, 6, 15, 8, 0, 0, tzinfo=timezone.utc)
CREATED = "2025-03-01T08:00:00Z"
CTX = orders.SiteContext("site-a", ("game",), ("CN",))
RULES = {  # amounts only: 500.00 yuan or more is reviewed, 5,000.00 or more rejected
    "limits": {"review_amount_cents": 50_000, "reject_amount_cents": 500_000,
               "review_quantity": 1000, "reject_quantity": 2000},
    "velocity": [], "site_daily": {"max_orders": 10**6, "max_amount_cents": 10**12},
    "new_site": {"days": 0}, "foreign_region_action": None,
}
# the canonical JSON of `item("o1", quantity=2)`: keys sorted, no spaces, the total left out (it is the list price)
O1_JSON = ('{"buyer":{"account":"p1","contact":"b@example.cn","ip":"198.51.100.7","region":"CN"},'
           '"created_at":"2025-03-01T08:00:00Z","currency":"CNY","order_id":"o1","quantity":2,"sku":"card-1",'
           '"unit_price_cents":100}')


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Where the prepared HQs are kept: the mutation runner's directory (shared by its runs), else the module's."""
    shared = os.environ.get("KITCTL_TEST_TEMPLATES")
    return Path(shared) if shared else tmp_path_factory.mktemp("hq-templates")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(orders, "utcnow", c)
    monkeypatch.setattr(batches, "utcnow", c)
    monkeypatch.setattr(inventory, "utcnow", c)  # the per-order path's allocation stamps the keys it sells
    return c


@pytest.fixture
def hq(tmp_path, templates, clock) -> Iterator[HQ]:  # type: ignore[no-untyped-def]
    service = copied_hq(tmp_path / "hq", templates, card_keys=4, rules=parse_rules(RULES))
    yield service
    service.close()


def item(order_id: str, quantity: int = 1, price: int = 100, total: int | None = None, sku: str = "card-1",
         account: str | None = "p1", contact: str = "b@example.cn", ip: str | None = "198.51.100.7",
         region: str | None = "CN") -> dict[str, Any]:
    out = {"order_id": order_id, "sku": sku, "quantity": quantity, "unit_price_cents": price, "currency": "CNY",
           "buyer": {"account": account, "contact": contact, "ip": ip, "region": region},
           "created_at": CREATED}
    if total is not None:
        out["total_cents"] = total
    return out


def batch(*items: dict[str, Any]) -> OrderBatch:
    return OrderBatch.model_validate({"orders": list(items)})


def site_b(hq: HQ) -> None:
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)


def submit(hq: HQ, key: str, *items: dict[str, Any], site: str = "site-a") -> tuple[list[dict[str, Any]], bool]:
    return orders.submit(hq, orders.SiteContext(site, ("game",), ("CN",)), key, batch(*items))


def per_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every batch down the per-order path (as when another request inserted one of its orders meanwhile)."""
    def raced(*args: Any, **kwargs: Any) -> None:
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: orders.site_id, orders.order_id"))

    monkeypatch.setattr(batches, "decide_new", raced)


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def key_row(hq: HQ, key: str, site: str = "site-a") -> tuple[Any, ...] | None:
    with hq.session() as s:
        row = s.get(IdempotencyKey, (site, key))
        return None if row is None else (row.request_sha256, row.state, utc(row.created_at), utc(row.expires_at),
                                         row.hq_order_ids)


def refusal(call: Any) -> tuple[int, str, str, dict[str, str]]:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.status, refused.value.code, refused.value.detail, refused.value.headers


def keys(hq: HQ) -> list[tuple[str, str, str | None, Any]]:
    """Every card key: (serial, status, the order it went to, when it was sold)."""
    with hq.session() as s:
        pks = {o.id: o.order_id for o in s.scalars(select(Order))}
        return [(k.serial, k.status, pks.get(k.order_pk), utc(k.sold_at))
                for k in s.scalars(select(CardKey).order_by(CardKey.serial))]


def summary(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["order_id"], r["decision"], r["status"], r["reasons"], r["delivery"], r["replayed"], r["payment"])
            for r in results]


# -- digests -----------------------------------------------------------------------------------------------

def test_a_body_is_known_by_the_sha256_of_its_sorted_compact_json_with_other_values_as_text():
    assert orders.body_hash({"b": 1, "a": [1, "x"]}) == hashlib.sha256(b'{"a":[1,"x"],"b":1}').hexdigest()
    assert orders.body_hash({"t": datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)}) == hashlib.sha256(
        b'{"t":"2025-01-02 03:04:05+00:00"}').hexdigest()


def test_an_orders_digest_leaves_out_a_total_equal_to_the_list_price_and_keeps_a_discount():
    listed = OrderIn.model_validate(item("o1", quantity=2, total=200))
    assert orders.order_body(listed) == {
        "order_id": "o1", "sku": "card-1", "quantity": 2, "unit_price_cents": 100, "currency": "CNY",
        "buyer": {"account": "p1", "contact": "b@example.cn", "ip": "198.51.100.7", "region": "CN"},
        "created_at": "2025-03-01T08:00:00Z"}
    assert orders.order_body(OrderIn.model_validate(item("o1", quantity=2))) == orders.order_body(listed)
    assert orders.order_body(OrderIn.model_validate(item("o1", quantity=2, total=150)))["total_cents"] == 150
    assert orders.order_hash(listed) == hashlib.sha256(O1_JSON.encode()).hexdigest()
    assert orders.batch_hash(batch(item("o1", quantity=2, total=200))) == hashlib.sha256(
        ('{"orders":[' + O1_JSON + "]}").encode()).hexdigest()


# -- the Idempotency-Key -----------------------------------------------------------------------------------

def test_a_new_key_is_claimed_in_flight_and_kept_seven_days(hq, clock):
    assert orders.claim_key(hq, "site-a", "k", "h1") is None
    assert key_row(hq, "k") == ("h1", "in_flight", T0, datetime(2025, 6, 22, 8, 0, tzinfo=timezone.utc), None)


def test_a_key_in_flight_refuses_another_request_for_120_seconds_then_the_next_takes_it_over(hq, clock):
    orders.claim_key(hq, "site-a", "k", "h1")
    busy = (409, "idempotency_in_flight", "a request with this Idempotency-Key is still being processed",
            {"Retry-After": "1"})
    clock.now = T0 + timedelta(seconds=119, microseconds=999_999)
    assert refusal(lambda: orders.claim_key(hq, "site-a", "k", "h1")) == busy
    clock.now = T0 + timedelta(seconds=120)
    assert orders.claim_key(hq, "site-a", "k", "h1") is None
    assert key_row(hq, "k")[1:3] == ("in_flight", T0 + timedelta(seconds=120))  # the new attempt's two minutes
    clock.now = T0 + timedelta(seconds=239)
    assert refusal(lambda: orders.claim_key(hq, "site-a", "k", "h1")) == busy


def test_a_key_with_another_body_is_refused_and_a_finished_key_gives_its_order_ids(hq, clock):
    conflict = (422, "idempotency_conflict", "this Idempotency-Key was used with a different body", {})
    orders.claim_key(hq, "site-a", "k", "h1")
    assert refusal(lambda: orders.claim_key(hq, "site-a", "k", "h2")) == conflict
    orders.finish_key(hq, "site-a", "k", ["hq_1", "hq_2"])
    assert key_row(hq, "k") == ("h1", "done", T0, datetime(2025, 6, 22, 8, 0, tzinfo=timezone.utc), ["hq_1", "hq_2"])
    clock.now = T0 + timedelta(days=1)
    assert orders.claim_key(hq, "site-a", "k", "h1") == ["hq_1", "hq_2"]
    assert refusal(lambda: orders.claim_key(hq, "site-a", "k", "h2")) == conflict
    orders.claim_key(hq, "site-a", "empty", "h1")
    orders.finish_key(hq, "site-a", "empty", [])
    assert orders.claim_key(hq, "site-a", "empty", "h1") == []


def test_keys_belong_to_their_site(hq, clock):
    orders.claim_key(hq, "site-a", "k", "h1")
    assert orders.claim_key(hq, "site-b", "k", "h2") is None
    orders.finish_key(hq, "site-b", "k", ["hq_b"])
    assert key_row(hq, "k", "site-a")[1] == "in_flight" and key_row(hq, "k", "site-b")[1:] [0] == "done"
    orders.finish_key(hq, "site-a", "unknown", ["hq_x"])
    assert key_row(hq, "unknown") is None


def test_a_key_is_told_apart_from_the_sites_other_keys(hq, clock):
    orders.claim_key(hq, "site-a", "k0", "h0")
    orders.claim_key(hq, "site-a", "k1", "h1")
    assert refusal(lambda: orders.claim_key(hq, "site-a", "k1", "h1"))[:2] == (409, "idempotency_in_flight")


def test_release_forgets_only_that_sites_key_and_only_while_in_flight(hq, clock):
    for site in ("site-a", "site-b"):
        orders.claim_key(hq, site, "k", "h1")
    orders.claim_key(hq, "site-a", "other", "h1")
    orders.claim_key(hq, "site-a", "done", "h1")
    orders.finish_key(hq, "site-a", "done", ["hq_1"])
    orders.release_key(hq, "site-a", "k")
    orders.release_key(hq, "site-a", "done")
    assert key_row(hq, "k", "site-a") is None
    assert key_row(hq, "k", "site-b") is not None and key_row(hq, "done", "site-a")[1] == "done"
    assert key_row(hq, "other", "site-a")[1] == "in_flight"


def test_purge_forgets_keys_only_once_their_seven_days_have_passed(hq, clock):
    orders.claim_key(hq, "site-a", "old", "h1")
    clock.now = T0 + timedelta(days=1)
    orders.claim_key(hq, "site-a", "new", "h1")
    clock.now = T0 + timedelta(days=7)
    assert orders.purge_keys(hq) == 0
    clock.now = T0 + timedelta(days=7, seconds=1)
    assert orders.purge_keys(hq) == 1
    assert key_row(hq, "old") is None and key_row(hq, "new") is not None


# -- submission --------------------------------------------------------------------------------------------

def test_a_batch_naming_an_order_twice_or_charging_above_list_price_is_refused_and_claims_no_key(hq):
    assert refusal(lambda: submit(hq, "k", item("o1"), item("o2"), item("o1"))) == (
        422, "duplicate_order_id", "orders: the batch lists the same order_id twice", {})
    assert refusal(lambda: submit(hq, "k", item("o1"), item("o2", quantity=2, total=201))) == (
        422, "total_above_list_price", "orders.1.total_cents: more than unit_price_cents × quantity", {})
    assert key_row(hq, "k") is None
    results, _ = submit(hq, "k", item("o1", total=100), item("o2", quantity=2, total=150), item("o3"))
    assert [r["status"] for r in results] == ["delivered", "delivered", "delivered"]


def test_new_orders_are_decided_delivered_and_their_key_finished_with_their_ids(hq, clock):
    results, replayed = submit(hq, "k", item("o1", quantity=2), item("o2", price=50_000), item("o3", price=500_000),
                               item("o4"))
    assert replayed is False
    assert summary(results) == [
        ("o1", "approve", "delivered", [], {"card_keys": [{"serial": "S0000", "secret": "x0"},
                                                          {"serial": "S0001", "secret": "x1"}]}, False, None),
        ("o2", "review", "review", ["amount_over:50000"], None, False, None),
        ("o3", "reject", "rejected", ["amount_over:500000"], None, False, None),
        ("o4", "approve", "delivered", [], {"card_keys": [{"serial": "S0002", "secret": "x2"}]}, False, None)]
    ids = [r["hq_order_id"] for r in results]
    assert all(i.startswith("hq_") and len(i) == 35 for i in ids) and len(set(ids)) == 4
    assert key_row(hq, "k")[1:] == ("done", T0, datetime(2025, 6, 22, 8, 0, tzinfo=timezone.utc), ids)
    assert keys(hq) == [("S0000", "sold", "o1", T0), ("S0001", "sold", "o1", T0), ("S0002", "sold", "o4", T0),
                        ("S0003", "available", None, None)]


def test_the_same_request_again_replays_every_answer_and_takes_nothing(hq):
    first, _ = submit(hq, "k", item("o1"), item("o2", price=50_000))
    again, replayed = submit(hq, "k", item("o1"), item("o2", price=50_000))
    assert replayed is True
    assert [{**r, "replayed": False} for r in again] == first and all(r["replayed"] for r in again)
    assert [k[1] for k in keys(hq)] == ["sold", "available", "available", "available"]


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_an_order_is_stored_whole_with_hqs_clock_and_price_on_both_paths(hq, clock, monkeypatch, path):
    if path == "per-order":
        per_order(monkeypatch)
    (result,), _ = submit(hq, "k", {**item("o1", quantity=2, total=150, account="acc-9")})
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.order_id == "o1"))
        stored = {c: getattr(row, c) for c in (
            "hq_order_id", "site_id", "order_id", "sku", "quantity", "unit_price_cents", "total_cents",
            "hq_price_cents", "currency", "buyer_account", "buyer_contact", "buyer_ip", "buyer_region", "decision",
            "status", "reasons", "decided_by")}
        times = [utc(row.site_created_at), utc(row.received_at), utc(row.decided_at)]
        digest = row.request_sha256
    assert stored == {
        "hq_order_id": result["hq_order_id"], "site_id": "site-a", "order_id": "o1", "sku": "card-1", "quantity": 2,
        "unit_price_cents": 100, "total_cents": 150, "hq_price_cents": 90, "currency": "CNY",
        "buyer_account": "acc-9", "buyer_contact": "b@example.cn", "buyer_ip": "198.51.100.7", "buyer_region": "CN",
        "decision": "approve", "status": "delivered", "reasons": [], "decided_by": "risk-engine"}
    assert times == [datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc), T0, T0]
    assert result["hq_order_id"].startswith("hq_") and len(result["hq_order_id"]) == 35
    assert digest == orders.order_hash(OrderIn.model_validate(item("o1", quantity=2, total=150, account="acc-9")))
    assert keys(hq)[:2] == [("S0000", "sold", "o1", T0), ("S0001", "sold", "o1", T0)]


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_orders_hq_cannot_fulfil_are_rejected_with_the_reason_on_both_paths(hq, monkeypatch, path):
    if path == "per-order":
        per_order(monkeypatch)
    results, _ = submit(hq, "k", item("o1", quantity=3), item("o2", quantity=2), item("o3", sku="nope"),
                        item("o4", quantity=11), item("o5"))
    assert summary(results) == [
        ("o1", "approve", "delivered", [], {"card_keys": [{"serial": "S0000", "secret": "x0"},
                                                          {"serial": "S0001", "secret": "x1"},
                                                          {"serial": "S0002", "secret": "x2"}]}, False, None),
        ("o2", "reject", "rejected", ["out_of_stock"], None, False, None),
        ("o3", "reject", "rejected", ["unknown_sku"], None, False, None),
        ("o4", "reject", "rejected", ["quantity_out_of_range:1-10"], None, False, None),
        ("o5", "approve", "delivered", [], {"card_keys": [{"serial": "S0003", "secret": "x3"}]}, False, None)]
    with hq.session() as s:
        assert s.scalar(select(Order.hq_price_cents).where(Order.order_id == "o3")) is None
        assert [(o.order_id, o.decision, o.status, o.reasons) for o in s.scalars(select(Order).order_by(Order.id))
                if o.order_id in ("o2", "o3")] == [("o2", "reject", "rejected", ["out_of_stock"]),
                                                  ("o3", "reject", "rejected", ["unknown_sku"])]


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_only_a_delivered_order_posts_to_the_ledger_on_both_paths(hq, monkeypatch, path):
    if path == "per-order":
        per_order(monkeypatch)
    submit(hq, "k", item("o1", price=50_000), item("o2", price=500_000), item("o3", quantity=5))
    with hq.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    submit(hq, "k2", item("o4", quantity=2))
    with hq.session() as s:
        entries = [(e.site_id, e.kind, utc(e.posted_at)) for e in s.scalars(select(LedgerEntry))]
    assert [e[:2] for e in entries] == [("site-a", "order")]
    if path == "batch":  # posted at the time the batch was decided
        assert entries[0][2] == T0


def test_a_batch_with_a_known_order_replays_it_and_decides_the_rest_one_by_one(hq, clock):
    (first,), _ = submit(hq, "k1", item("o1"))
    results, replayed = submit(hq, "k2", item("o1"), item("o2", price=50_000), item("o3"))
    assert replayed is False
    assert first["hq_order_id"] == results[0]["hq_order_id"]
    assert summary(results) == [
        ("o1", "approve", "delivered", [], {"card_keys": [{"serial": "S0000", "secret": "x0"}]}, True, None),
        ("o2", "review", "review", ["amount_over:50000"], None, False, None),
        ("o3", "approve", "delivered", [], {"card_keys": [{"serial": "S0001", "secret": "x1"}]}, False, None)]
    assert key_row(hq, "k2")[1:] == ("done", T0, datetime(2025, 6, 22, 8, 0, tzinfo=timezone.utc),
                                     [r["hq_order_id"] for r in results])


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_a_known_order_with_another_body_refuses_the_batch_stores_nothing_and_frees_the_key(hq, monkeypatch, path):
    submit(hq, "k1", item("o1"))
    site_b(hq)
    submit(hq, "k1", item("p1"), site="site-b")  # another site's order of the same id is no conflict
    if path == "per-order":
        per_order(monkeypatch)
    assert refusal(lambda: submit(hq, "k2", item("o2"), item("o1", price=101), item("o3"))) == (
        422, "idempotency_conflict", "order 'o1' was already sent with a different body", {})
    assert key_row(hq, "k2") is None
    with hq.session() as s:
        assert sorted(s.scalars(select(Order.order_id).where(Order.site_id == "site-a"))) == ["o1"]
    results, _ = submit(hq, "k3", item("p1", price=200), item("o1"))
    assert [(r["order_id"], r["replayed"]) for r in results] == [("p1", False), ("o1", True)]


def test_per_order_a_known_order_is_answered_as_stored_and_a_failed_insert_of_an_unknown_one_is_raised(hq, monkeypatch):
    (first,), _ = submit(hq, "k1", item("o1"))
    calls = []

    def lost_race(hq_: Any, s: Any, ctx: Any, order: Any, *rest: Any) -> Any:
        calls.append(order.order_id)
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(orders, "_new_order", lost_race)
    result = orders.decide_one(hq, CTX, OrderIn.model_validate(item("o1")))
    assert calls == [] and result == {**first, "replayed": True}
    assert refusal(lambda: orders.decide_one(hq, CTX, OrderIn.model_validate(item("o1", price=99)))) == (
        422, "idempotency_conflict", "order 'o1' was already sent with a different body", {})
    with pytest.raises(IntegrityError):
        orders.decide_one(hq, CTX, OrderIn.model_validate(item("o9")))
    assert calls == ["o9"]


def test_a_refused_request_frees_its_key_and_another_request_may_use_it(hq, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(batches, "decide_new", broken)
    with pytest.raises(RuntimeError):
        submit(hq, "k", item("o1"))
    assert key_row(hq, "k") is None
    monkeypatch.undo()
    results, replayed = submit(hq, "k", item("o9"))
    assert [r["order_id"] for r in results] == ["o9"] and replayed is False


# -- reading orders back -----------------------------------------------------------------------------------

def test_an_order_is_read_back_per_site_and_an_unknown_one_is_a_404(hq):
    (first, second), _ = submit(hq, "k", item("o1"), item("o2", price=50_000))
    site_b(hq)
    submit(hq, "k", item("o3"), site="site-b")
    assert orders.get_order(hq, "site-a", "o1") == {**first, "replayed": False}
    assert orders.get_order(hq, "site-a", "o2") == second
    assert refusal(lambda: orders.get_order(hq, "site-a", "o3")) == (
        404, "not_found", "order 'o3' is unknown to HQ", {})
    assert refusal(lambda: orders.get_order(hq, "site-b", "o1"))[0] == 404


def test_statuses_answer_the_sites_known_orders_in_the_order_asked(hq):
    (first, second), _ = submit(hq, "k", item("o1"), item("o2", price=50_000))
    site_b(hq)
    submit(hq, "k", item("o3"), site="site-b")
    assert orders.statuses(hq, "site-a", ["o2", "zz", "o3", "o1"]) == [second, first]
    assert orders.statuses(hq, "site-a", []) == []


def test_results_for_keeps_the_order_of_the_ids_given_and_leaves_out_another_sites(hq):
    (first, second), _ = submit(hq, "k", item("o1"), item("o2", price=50_000))
    site_b(hq)
    (other,), _ = submit(hq, "k", item("o3"), site="site-b")
    ids = [second["hq_order_id"], other["hq_order_id"], first["hq_order_id"]]
    assert orders.results_for(hq, "site-a", ids, replayed=True) == [
        {**second, "replayed": True}, {**first, "replayed": True}]


# -- the batch path's own counting ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_both_paths_count_the_earlier_orders_toward_the_sites_daily_limits(hq, monkeypatch, path):
    hq.rules.save(parse_rules({**RULES, "site_daily": {"max_orders": 2, "max_amount_cents": 250, "action": "review"}}))
    if path == "per-order":
        per_order(monkeypatch)
    results, _ = submit(hq, "k", item("o1"), item("o2", price=151), item("o3"))
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("o1", "approve", []), ("o2", "review", ["site_daily_amount:250"]),
        ("o3", "review", ["site_daily_orders:2", "site_daily_amount:250"])]


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_a_batch_counts_the_sites_orders_stored_earlier_that_day_toward_its_daily_limits(hq, clock, monkeypatch,
                                                                                       path):
    """Earlier requests' orders count: the site's own, received since HQ's midnight (UTC); not the day before's,
    not another site's."""
    hq.rules.save(parse_rules({**RULES, "site_daily": {"max_orders": 2, "max_amount_cents": 250, "action": "review"}}))
    site_b(hq)
    clock.now = datetime(2025, 6, 14, 23, 59, 59, tzinfo=timezone.utc)
    submit(hq, "k0", item("y1"))  # the day before: not counted
    clock.now = datetime(2025, 6, 15, 0, 0, 0, tzinfo=timezone.utc)
    submit(hq, "k1", item("o1"))  # at midnight: counted
    submit(hq, "k1", item("b1"), site="site-b")  # another site's: not counted
    clock.now = T0
    if path == "per-order":
        per_order(monkeypatch)
    results, _ = submit(hq, "k2", item("o2", price=151), item("o3"))
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("o2", "review", ["site_daily_amount:250"]),
        ("o3", "review", ["site_daily_orders:2", "site_daily_amount:250"])]


def test_the_batch_path_holds_a_new_sites_large_orders_for_review_by_the_sites_age(hq, clock):
    licences.issue(hq, "t", "site-n", "pro", ["game"], 365)  # created at the real now: a new site
    hq.rules.save(parse_rules({**RULES, "new_site": {"days": 7, "max_orders_per_day": 1,
                                                     "max_amount_cents_per_order": 100}}))
    clock.now = datetime.now(timezone.utc)
    results, _ = submit(hq, "k", item("o1"), item("o2", price=101), item("o3"), site="site-n")
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("o1", "approve", []), ("o2", "review", ["new_site_daily_orders:1", "new_site_amount:100"]),
        ("o3", "review", ["new_site_daily_orders:1"])]


def test_the_batch_path_counts_each_velocity_signal_over_the_batch_and_the_stored_orders(hq):
    hq.rules.save(parse_rules({**RULES, "velocity": [
        {"key": "account", "window_seconds": 600, "max_orders": 2, "action": "review"},
        {"key": "account", "window_seconds": 600, "max_orders": 3, "action": "reject"}]}))
    submit(hq, "k1", item("o1", account="acc-a"))
    results, _ = submit(hq, "k2", item("o2", account="acc-a"), item("o3", account="acc-b"),
                        item("o4", account="acc-a"), item("o5", account=None), item("o6", account="acc-a"))
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("o2", "approve", []), ("o3", "approve", []), ("o4", "review", ["velocity_account:2/600s"]),
        ("o5", "approve", []), ("o6", "reject", ["velocity_account:2/600s", "velocity_account:3/600s"])]


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_every_buyer_signal_reaches_the_risk_engine_on_both_paths(hq, monkeypatch, path):
    hq.rules.save(parse_rules({**RULES, "limits": {**RULES["limits"], "review_quantity": 5, "reject_quantity": 8},
                               "block": {"accounts": ["bad-acc"], "contacts": ["bad@x.cn"], "ips": ["203.0.113.0/24"],
                                         "regions": ["KP"]},
                               "foreign_region_action": "review"}))
    if path == "per-order":
        per_order(monkeypatch)
    results, _ = submit(hq, "k", item("b1", account="bad-acc"), item("b2", contact="bad@x.cn"),
                        item("b3", ip="203.0.113.9"), item("b4", region="KP"), item("b5", region="JP"),
                        item("b6", quantity=5, price=1), item("b7", account=None, ip=None, region=None),
                        item("b8", quantity=2, price=25_000))  # 2 × 250.00 yuan: the review amount
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("b1", "reject", ["blocked_account"]), ("b2", "reject", ["blocked_contact"]), ("b3", "reject", ["blocked_ip"]),
        ("b4", "reject", ["blocked_region", "region_outside_licence:KP"]), ("b5", "review", ["region_outside_licence:JP"]),
        ("b6", "review", ["quantity_over:5"]), ("b7", "approve", []), ("b8", "review", ["amount_over:50000"])]


def test_the_batch_path_counts_contact_and_ip_apart_from_the_account(hq):
    hq.rules.save(parse_rules({**RULES, "velocity": [
        {"key": "contact", "window_seconds": 600, "max_orders": 2, "action": "review"},
        {"key": "ip", "window_seconds": 600, "max_orders": 2, "action": "reject"}]}))
    results, _ = submit(hq, "k", item("c1", contact="c@x.cn", ip="198.51.100.1"),
                        item("c2", contact="c@x.cn", ip="198.51.100.2"), item("c3", contact="c@x.cn", ip="198.51.100.3"),
                        item("i4", contact="d@x.cn", ip="198.51.100.1"), item("i5", contact="e@x.cn", ip="198.51.100.1"),
                        item("n6", contact="f@x.cn", ip=None))
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("c1", "approve", []), ("c2", "approve", []), ("c3", "review", ["velocity_contact:2/600s"]),
        ("i4", "approve", []), ("i5", "reject", ["velocity_ip:2/600s"]), ("n6", "approve", [])]


def test_a_direct_top_up_is_delivered_without_keys(hq, templates, tmp_path):
    topup = copied_hq(tmp_path / "topup", templates, direct_topup="g", rules=parse_rules(RULES))
    try:
        results, _ = orders.submit(topup, CTX, "k", batch(item("o1", sku="g", quantity=3)))
        assert summary(results) == [("o1", "approve", "delivered", [], {"card_keys": []}, False, None)]
        assert orders.get_order(topup, "site-a", "o1")["delivery"] == {"card_keys": []}
    finally:
        topup.close()


# -- with a payment gateway: an approval is payable, its keys reserved ---------------------------------------

def with_gateway(hq: HQ) -> None:
    """epay makes its pay links locally (a signed URL): nothing is asked over the network."""
    from hq.payments import config

    config.configure(hq, "tester", "epay", {"api_url": "http://127.0.0.1:9/", "pid": "1001", "key": "k" * 32})


def payment(result: dict[str, Any]) -> tuple[Any, ...] | None:
    p = result["payment"]
    return None if p is None else (p["gateway"], p["amount_cents"], p["currency"], p["status"],
                                   p["pay_url"].startswith("http://127.0.0.1:9/submit.php?pid=1001&"))


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_with_a_gateway_an_approved_order_awaits_payment_with_its_keys_reserved_on_both_paths(hq, monkeypatch, path):
    with_gateway(hq)
    if path == "per-order":
        per_order(monkeypatch)
    results, _ = submit(hq, "k", item("o1", quantity=2, total=150), item("o2", price=50_000), item("o3", quantity=3),
                        item("o4", sku="nope"), item("o5"))
    assert [(r["order_id"], r["decision"], r["status"], r["reasons"], r["delivery"], payment(r)) for r in results] == [
        ("o1", "approve", "pending_payment", [], None, ("epay", 150, "CNY", "pending", True)),
        ("o2", "review", "review", ["amount_over:50000"], None, None),
        ("o3", "reject", "rejected", ["out_of_stock"], None, None),
        ("o4", "reject", "rejected", ["unknown_sku"], None, None),
        ("o5", "approve", "pending_payment", [], None, ("epay", 100, "CNY", "pending", True))]
    assert [k[:3] for k in keys(hq)] == [("S0000", "reserved", "o1"), ("S0001", "reserved", "o1"),
                                        ("S0002", "reserved", "o5"), ("S0003", "available", None)]
    with hq.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0  # nothing is paid yet
    assert orders.get_order(hq, "site-a", "o1") == results[0]
    again, replayed = submit(hq, "k", item("o1", quantity=2, total=150), item("o2", price=50_000),
                             item("o3", quantity=3), item("o4", sku="nope"), item("o5"))
    assert replayed and [{**r, "replayed": False} for r in again] == results


def test_with_a_gateway_a_direct_top_up_awaits_payment_without_keys(hq, templates, tmp_path):
    topup = copied_hq(tmp_path / "topup", templates, direct_topup="g", rules=parse_rules(RULES))
    try:
        with_gateway(topup)
        (result,), _ = orders.submit(topup, CTX, "k", batch(item("o1", sku="g", quantity=3)))
        assert (result["status"], result["delivery"], payment(result)) == (
            "pending_payment", None, ("epay", 300, "CNY", "pending", True))
        decided = orders.decide_one(topup, CTX, OrderIn.model_validate(item("o2", sku="g", quantity=2)))
        assert (decided["status"], payment(decided)) == ("pending_payment", ("epay", 200, "CNY", "pending", True))
    finally:
        topup.close()


# -- two requests with the same new key at once (PostgreSQL: real concurrent writers) ----------------------------

@pytest.mark.postgres
def test_two_requests_with_the_same_new_key_at_once_one_claims_it_and_the_other_is_told_to_wait(
        tmp_path, hq_pg_server, hq_pg_template, clock):
    """The claim is one INSERT: the first commits, the second meets its row and gets 409 (never an error, never a
    second claim). Twenty keys, each claimed by two threads released together."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from hq.settings import HQSettings
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url:
        service = HQ.open(HQSettings(dir=tmp_path / "hq", database_url=url, registry_url=None))
        try:
            gate = Barrier(2)

            def claim(key: str) -> str:
                gate.wait()
                try:
                    return "claimed" if orders.claim_key(service, "site-a", key, "h1") is None else "replayed"
                except ApiError as exc:
                    return str(exc.status)
                except Exception as exc:  # noqa: BLE001 - what a request would see as a 500
                    return type(exc).__name__

            with ThreadPoolExecutor(2) as pool:
                outcomes = [sorted(pool.map(claim, [f"k{i}", f"k{i}"])) for i in range(20)]
            assert outcomes == [["409", "claimed"]] * 20
            with service.session() as s:
                assert s.scalar(select(func.count()).select_from(IdempotencyKey)) == 20
        finally:
            service.close()


class RemoteGateway:
    """A gateway whose pay links are a call over the network (as Alipay's precreate): records each request and
    whether HQ held its database writer at that moment (a slow gateway must hold no lock)."""

    name = "alipay"
    currency = "CNY"
    creates_remotely = True

    def __init__(self, hq: HQ) -> None:
        self.hq = hq
        self.asked: list[tuple[str, int, str, bool]] = []
        self.currencies: list[str] = []

    def create(self, request: Any) -> Any:
        import threading

        from hq.payments.contract import PayLink

        free: list[bool] = []

        def try_writer() -> None:
            got = self.hq._sqlite_writer.acquire(blocking=False)
            if got:
                self.hq._sqlite_writer.release()
            free.append(got)

        probe = threading.Thread(target=try_writer)
        probe.start()
        probe.join()
        self.asked.append((request.out_trade_no, request.amount_cents, request.subject, not free[0]))
        self.currencies.append(request.currency)
        return PayLink(pay_url=f"https://pay.example/{request.out_trade_no}", qr_content=f"qr:{request.out_trade_no}")


def test_a_remote_gateways_links_are_asked_before_the_batchs_transaction_for_the_approved_orders_only(hq, monkeypatch):
    from hq.payments import gateways

    remote = RemoteGateway(hq)
    monkeypatch.setattr(gateways, "active", lambda hq_, conn: remote)
    results, _ = submit(hq, "k", item("o1", quantity=2, total=150), item("o2", price=50_000), item("o3"))
    assert [(r["order_id"], r["status"], r["payment"] and r["payment"]["pay_url"]) for r in results] == [
        ("o1", "pending_payment", f"https://pay.example/{remote.asked[0][0]}"), ("o2", "review", None),
        ("o3", "pending_payment", f"https://pay.example/{remote.asked[1][0]}")]
    assert [a[1:] for a in remote.asked] == [(150, "card-1 x2", False), (100, "card-1 x1", False)]  # once each, unlocked
    assert remote.currencies == ["CNY", "CNY"]
    remote.asked.clear()
    results, _ = submit(hq, "k2", item("o3"), item("o4"))  # a known order: the per-order path, which asks first too
    assert [(r["order_id"], r["status"], r["replayed"]) for r in results] == [
        ("o3", "pending_payment", True), ("o4", "pending_payment", False)]
    assert [a[1:] for a in remote.asked] == [(100, "card-1 x1", False)]
    from hq.payments.flow import out_trade_no  # the merchant order number: per (site, order)

    assert remote.asked[0][0] == out_trade_no("site-a", "o4")


class LocalGateway(RemoteGateway):
    """A gateway that makes its links without a network call (as the sandbox): asked inside the transaction."""

    creates_remotely = False


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_a_local_gateways_links_are_asked_inside_the_transaction_for_each_approved_order(hq, monkeypatch, path):
    from hq.payments import gateways
    from hq.payments.flow import out_trade_no

    local = LocalGateway(hq)
    monkeypatch.setattr(gateways, "active", lambda hq_, conn: local)
    if path == "per-order":
        per_order(monkeypatch)
    results, _ = submit(hq, "k", item("o1", quantity=2, total=150), item("o2", price=50_000), item("o3"))
    assert [(r["order_id"], r["status"], r["payment"] and r["payment"]["pay_url"]) for r in results] == [
        ("o1", "pending_payment", f"https://pay.example/{out_trade_no('site-a', 'o1')}"), ("o2", "review", None),
        ("o3", "pending_payment", f"https://pay.example/{out_trade_no('site-a', 'o3')}")]
    assert local.asked == [(out_trade_no("site-a", "o1"), 150, "card-1 x2", True),  # under the transaction's writer
                           (out_trade_no("site-a", "o3"), 100, "card-1 x1", True)]
    assert local.currencies == ["CNY", "CNY"]


def test_fulfilling_an_order_whose_catalog_item_is_gone_delivers_it_and_posts_it_without_a_category(hq):
    """fulfil() takes the item as found (None when there is none): no keys to allocate, the order still paid."""
    submit(hq, "k", item("o1", price=50_000))  # held for review: not fulfilled yet
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.order_id == "o1"))
        orders.fulfil(s, row, None)
    with hq.session() as s:
        assert s.scalar(select(Order.status).where(Order.order_id == "o1")) == "delivered"
        assert [e.kind for e in s.scalars(select(LedgerEntry))] == ["order"]
    assert [k[1] for k in keys(hq)] == ["available"] * 4


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_a_delivered_order_is_posted_under_its_category_on_both_paths(hq, monkeypatch, path):
    """A category's own share rate (8 % for games here, from HQ's day T0) applies to the order's posting."""
    from hq.ledger import accounts, rates

    monkeypatch.setattr(rates, "utcnow", lambda: T0 - timedelta(days=1))  # the rate was set the day before
    rates.set_rate(hq, "op", "share_bps", 800, T0.date(), category="game")
    if path == "per-order":
        per_order(monkeypatch)
    submit(hq, "k", item("o1", price=10_000))
    with hq.read() as conn:
        assert accounts.site_balance(conn, "site-a") == 10_000 - 90 - 800


def test_on_the_batch_path_a_buyers_first_order_counts_nothing_before_it(hq):
    """With at most one order an hour per account, the account's first order passes and its second is held."""
    hq.rules.save(parse_rules({**RULES, "velocity": [
        {"key": "account", "window_seconds": 3600, "max_orders": 1, "action": "review"}]}))
    results, _ = submit(hq, "k", item("f1", account="acc-f"), item("f2", account="acc-f"))
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("f1", "approve", []), ("f2", "review", ["velocity_account:1/3600s"])]


# -- review approvals (hq.reviews): what an operator's decision does -------------------------------------------

def review_order(order_id: str) -> dict[str, Any]:
    """Two keys at a discount: 550.00 yuan charged (list price 600.00), at or above the review amount (500.00)."""
    return item(order_id, quantity=2, price=30_000, total=55_000)


def test_an_order_under_review_is_listed_whole_and_a_rejection_answers_it_whole(hq, clock, monkeypatch):
    from hq import reviews

    monkeypatch.setattr(reviews, "utcnow", clock)
    (result,), _ = submit(hq, "k", review_order("r1"))
    entry = {"hq_order_id": result["hq_order_id"], "site": "site-a", "order_id": "r1", "sku": "card-1",
             "quantity": 2, "amount_cents": 55_000, "currency": "CNY",
             "buyer": {"account": "p1", "contact": "b@example.cn", "ip": "198.51.100.7", "region": "CN"},
             "reasons": ["amount_over:50000"], "received_at": "2025-06-15T08:00:00Z", "status": "review",
             "decision": "review"}
    assert reviews.queue(hq) == [entry]
    clock.now = T0 + timedelta(minutes=5)
    assert reviews.resolve(hq, "op-li", result["hq_order_id"], "reject", note="called the buyer") == {
        **entry, "reasons": ["amount_over:50000", "operator:reject"], "status": "rejected", "decision": "reject"}
    assert reviews.queue(hq) == []
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.order_id == "r1"))
        assert (row.decided_by, utc(row.decided_at)) == ("op-li", T0 + timedelta(minutes=5))
    assert [k[1] for k in keys(hq)] == ["available"] * 4


def test_a_review_approval_asks_a_remote_gateway_for_its_link_before_its_transaction(hq, monkeypatch):
    """Alipay and WeChat Pay make a pay link over the network: asked once, with no database lock held, for the
    approved order's own merchant number, charge (the site's discounted total), subject and currency."""
    from hq import reviews
    from hq.payments import gateways
    from hq.payments.flow import out_trade_no

    remote = RemoteGateway(hq)
    monkeypatch.setattr(gateways, "active", lambda hq_, conn: remote if hq_ is hq and conn is not None else None)
    results, _ = submit(hq, "k", review_order("r1"), review_order("r2"), item("r3", price=50_000))
    assert [r["status"] for r in results] == ["review"] * 3 and remote.asked == []  # nothing to pay yet
    resolved = reviews.resolve(hq, "op", results[1]["hq_order_id"], "approve")
    assert (resolved["order_id"], resolved["decision"], resolved["status"]) == ("r2", "approve", "pending_payment")
    assert remote.asked == [(out_trade_no("site-a", "r2"), 55_000, "card-1 x2", False)]
    assert remote.currencies == ["CNY"]
    assert orders.get_order(hq, "site-a", "r2")["payment"]["pay_url"] == f"https://pay.example/{remote.asked[0][0]}"
    reviews.resolve(hq, "op", results[2]["hq_order_id"], "approve")  # no total sent: the list price is charged
    assert remote.asked[1:] == [(out_trade_no("site-a", "r3"), 50_000, "card-1 x1", False)]
    assert [k[:3] for k in keys(hq)] == [("S0000", "reserved", "r2"), ("S0001", "reserved", "r2"),
                                        ("S0002", "reserved", "r3"), ("S0003", "available", None)]


def test_a_rejection_a_decided_or_unknown_order_and_a_held_payment_ask_the_remote_gateway_nothing(hq, clock,
                                                                                                   monkeypatch):
    """Only an unpaid order under review that the operator approves needs a pay link; a held payment (the buyer
    paid, but it did not fit) is delivered with the money already paid."""
    from hq import reviews
    from hq.models import Payment
    from hq.payments import gateways
    from hq.payments.flow import out_trade_no

    remote = RemoteGateway(hq)
    monkeypatch.setattr(gateways, "active", lambda hq_, conn: remote)
    results, _ = submit(hq, "k", review_order("r1"), review_order("r2"))
    r1, r2 = (r["hq_order_id"] for r in results)
    assert reviews.resolve(hq, "op", r1, "reject")["status"] == "rejected"
    assert refusal(lambda: reviews.resolve(hq, "op", r1, "approve")) == (
        409, "not_in_review", f"order {r1!r} is rejected, not under review", {})
    assert refusal(lambda: reviews.resolve(hq, "op", "hq_nope", "approve")) == (
        404, "not_found", "order 'hq_nope' does not exist", {})
    with hq.session() as s:
        pk = s.scalar(select(Order.id).where(Order.order_id == "r2"))
        s.add(Payment(order_pk=pk, out_trade_no=out_trade_no("site-a", "r2"), gateway="alipay", amount_cents=54_000,
                      currency="CNY", status="held", pay_url="https://pay.example/held", qr_content="qr:held",
                      created_at=T0, expires_at=T0 + timedelta(hours=1), paid_at=T0, trade_no="T-r2"))
    monkeypatch.setattr(reviews, "utcnow", clock)
    clock.now = T0 + timedelta(minutes=10)
    assert reviews.resolve(hq, "op", r2, "approve")["status"] == "delivered"
    assert remote.asked == []
    assert keys(hq)[:2] == [("S0000", "sold", "r2", clock.now), ("S0001", "sold", "r2", clock.now)]  # sold then


def test_a_review_decision_drops_its_sites_cached_metrics_of_its_month_and_the_next(hq):
    """The order's month's rates change now, and the next month's growth compares with them (hq.grade_cache)."""
    from hq import reviews
    from hq.models import GradeCache

    (result,), _ = submit(hq, "k", review_order("r1"))  # received T0, in June 2025
    cached = [("site-a", "2025-05"), ("site-a", "2025-06"), ("site-a", "2025-07"), ("site-a", "2025-08"),
              ("site-b", "2025-06")]
    with hq.session() as s:
        s.add_all([GradeCache(site_id=site, period=period, metrics={}, computed_at=T0) for site, period in cached])
    reviews.resolve(hq, "op", result["hq_order_id"], "reject")
    with hq.session() as s:
        assert sorted((g.site_id, g.period) for g in s.scalars(select(GradeCache))) == [
            ("site-a", "2025-05"), ("site-a", "2025-08"), ("site-b", "2025-06")]
