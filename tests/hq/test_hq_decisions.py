"""HQ's decision holds on every path an order can take: only `approve` releases card keys.

Paths: a batch of new orders (hq.batch), the per-order path (a batch that
contains an already known order id, hq.orders.decide_one), a replay (the same
Idempotency-Key, or the same order id again), the status query, and the
operator's review resolution. Each test says what the rule is in its own
terms: an order above the review amount is `review`, carries no delivery and
takes no key from stock until an operator approves it.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from hq import catalog, licences, orders, reviews
from hq.errors import ApiError
from hq.models import CardKey, CatalogItem, Order
from hq.risk import parse_rules
from hq.schemas import OrderBatch
from hq.service import HQ
from tests.hq.helpers import open_hq, order, rewrite_row

REVIEW_FROM = 50_000  # cents: an order of this amount or more goes to manual review
REJECT_FROM = 500_000  # cents: and of this much or more is rejected outright
RULES = {
    "limits": {"review_amount_cents": REVIEW_FROM, "reject_amount_cents": REJECT_FROM,
               "review_quantity": 1000, "reject_quantity": 2000},
    "velocity": [],
    "site_daily": {"max_orders": 10**6, "max_amount_cents": 10**12},
    "new_site": {"days": 0},
    "foreign_region_action": None,
}
STOCK = 4
CREATED = "2025-03-01T08:00:00+00:00"  # fixed, so the same order sent again has the same body


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq", db_url, card_keys=STOCK, rules=parse_rules(RULES))
    yield service
    service.close()


def small(order_id: str, quantity: int = 1) -> dict[str, Any]:
    """Well under the review amount: approved."""
    return {**order(order_id, sku="card-1", quantity=quantity, unit_price_cents=100), "created_at": CREATED}


def big(order_id: str, quantity: int = 1) -> dict[str, Any]:
    """Exactly the review amount (the limit is inclusive): sent to review."""
    return {**order(order_id, sku="card-1", quantity=quantity, unit_price_cents=REVIEW_FROM // quantity),
            "created_at": CREATED}


def huge(order_id: str) -> dict[str, Any]:
    return {**order(order_id, sku="card-1", unit_price_cents=REJECT_FROM), "created_at": CREATED}


def submit(hq: HQ, key: str, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    ctx = orders.SiteContext("site-a", ("game",), ("CN",))
    return orders.submit(hq, ctx, key, OrderBatch.model_validate({"orders": items}))


def sold(hq: HQ) -> int:
    with hq.session() as s:
        return int(s.scalar(select(func.count()).select_from(CardKey).where(CardKey.status == "sold")))


def stored(hq: HQ, order_id: str, site: str = "site-a") -> tuple[str, str] | None:
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.site_id == site, Order.order_id == order_id))
        return (row.decision, row.status) if row is not None else None


def assert_held_for_review(result: dict[str, Any]) -> None:
    assert (result["decision"], result["status"], result["delivery"]) == ("review", "review", None)
    assert result["reasons"] == [f"amount_over:{REVIEW_FROM}"]


def test_batch_path_holds_a_review_order_and_delivers_an_approved_one(hq):
    results, replayed = submit(hq, "k1", [big("o-review"), small("o-ok", quantity=2), huge("o-no")])
    assert not replayed
    assert_held_for_review(results[0])
    assert (results[1]["decision"], results[1]["status"]) == ("approve", "delivered")
    assert len(results[1]["delivery"]["card_keys"]) == 2
    assert (results[2]["decision"], results[2]["status"], results[2]["delivery"]) == ("reject", "rejected", None)
    assert sold(hq) == 2
    assert stored(hq, "o-review") == ("review", "review")
    assert stored(hq, "o-no") == ("reject", "rejected")


def test_per_order_path_holds_a_review_order(hq):
    """A batch with an already known order id goes one order at a time: the rule is the same there."""
    first, _ = submit(hq, "k1", [small("o-known")])
    assert sold(hq) == 1
    results, replayed = submit(hq, "k2", [small("o-known"), big("o-review", quantity=2), huge("o-no"), small("o-ok")])
    assert not replayed
    assert results[0]["replayed"] and results[0]["delivery"] == first[0]["delivery"]
    assert_held_for_review(results[1])
    assert not results[1]["replayed"]
    assert (results[2]["decision"], results[2]["status"], results[2]["delivery"]) == ("reject", "rejected", None)
    assert (results[3]["decision"], results[3]["status"]) == ("approve", "delivered")
    assert len(results[3]["delivery"]["card_keys"]) == 1
    assert sold(hq) == 2  # o-known's key and o-ok's; none for the order under review or the rejected one
    assert stored(hq, "o-review") == ("review", "review")
    assert stored(hq, "o-no") == ("reject", "rejected")


def test_replays_keep_a_review_order_held(hq):
    submit(hq, "k1", [big("o-review")])
    again, replayed = submit(hq, "k1", [big("o-review")])  # the same Idempotency-Key
    assert replayed and again[0]["replayed"]
    assert_held_for_review(again[0])
    alone = orders.decide_one(hq, orders.SiteContext("site-a", ("game",), ("CN",)),
                              OrderBatch.model_validate({"orders": [big("o-review")]}).orders[0])
    assert alone["replayed"]
    assert_held_for_review(alone)
    assert_held_for_review(orders.get_order(hq, "site-a", "o-review"))
    assert sold(hq) == 0


def test_per_order_replay_of_a_changed_body_is_refused(hq):
    submit(hq, "k1", [small("o-1")])
    with pytest.raises(ApiError) as refused:
        submit(hq, "k2", [small("o-1", quantity=2), small("o-2")])
    assert refused.value.status == 422
    assert (refused.value.code, refused.value.detail) == (
        "idempotency_conflict", "order 'o-1' was already sent with a different body")
    with pytest.raises(ApiError) as alone:  # the same rule when the order is decided on its own
        orders.decide_one(hq, orders.SiteContext("site-a", ("game",), ("CN",)),
                          OrderBatch.model_validate({"orders": [small("o-1", quantity=3)]}).orders[0])
    assert (alone.value.status, alone.value.code, alone.value.detail) == (
        422, "idempotency_conflict", "order 'o-1' was already sent with a different body")
    assert sold(hq) == 1


def test_a_changed_order_anywhere_in_the_batch_refuses_it_before_anything_is_decided(hq):
    submit(hq, "k1", [small("o-1")])
    with pytest.raises(ApiError) as refused:
        submit(hq, "k2", [small("o-new"), big("o-review"), small("o-1", quantity=2)])
    assert (refused.value.status, refused.value.code) == (422, "idempotency_conflict")
    assert stored(hq, "o-new") is None and stored(hq, "o-review") is None
    assert sold(hq) == 1


def test_order_ids_of_another_site_are_not_this_sites_on_the_per_order_path(hq):
    """site-b's "o-1" has another body; site-a's first "o-1", in a batch holding a known order, is new."""
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    submit(hq, "k1", [small("o-known")])
    orders.submit(hq, orders.SiteContext("site-b", ("game",), ("CN",)), "b1",
                  OrderBatch.model_validate({"orders": [small("o-1", quantity=2)]}))
    results, _ = submit(hq, "k2", [small("o-known"), small("o-1")])
    assert results[0]["replayed"] is True
    assert (results[1]["decision"], results[1]["status"], results[1]["replayed"]) == ("approve", "delivered", False)
    assert stored(hq, "o-1") == ("approve", "delivered") and stored(hq, "o-1", "site-b") == ("approve", "delivered")


def test_review_approval_releases_the_keys_then_and_only_once(hq):
    results, _ = submit(hq, "k1", [big("o-review", quantity=2)])
    hq_id = results[0]["hq_order_id"]
    assert sold(hq) == 0
    resolved = reviews.resolve(hq, "op", hq_id, "approve")
    assert (resolved["decision"], resolved["status"]) == ("approve", "delivered")
    assert resolved["reasons"] == [f"amount_over:{REVIEW_FROM}", "operator:approve"]
    assert sold(hq) == 2
    got = orders.get_order(hq, "site-a", "o-review")
    assert got["status"] == "delivered" and len(got["delivery"]["card_keys"]) == 2
    with pytest.raises(ApiError) as again:
        reviews.resolve(hq, "op", hq_id, "approve")
    assert again.value.status == 409
    assert sold(hq) == 2


def test_review_rejection_releases_nothing(hq):
    results, _ = submit(hq, "k1", [big("o-review")])
    resolved = reviews.resolve(hq, "op", results[0]["hq_order_id"], "reject")
    assert (resolved["decision"], resolved["status"]) == ("reject", "rejected")
    assert resolved["reasons"] == [f"amount_over:{REVIEW_FROM}", "operator:reject"]
    assert orders.get_order(hq, "site-a", "o-review")["delivery"] is None
    assert sold(hq) == 0


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_review_resolution_records_who_when_and_what_and_names_a_refusal(hq, monkeypatch, decision):
    from datetime import datetime, timezone

    from hq.models import AuditEvent

    at = datetime(2025, 3, 2, 10, 0, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(reviews, "utcnow", lambda: at)
    results, _ = submit(hq, "k1", [big("o-review", quantity=2)])
    hq_id = results[0]["hq_order_id"]
    resolved = reviews.resolve(hq, "op-jane", hq_id, decision, note="called the buyer")
    outcome = "delivered" if decision == "approve" else "rejected"
    assert {k: resolved[k] for k in ("hq_order_id", "site", "order_id", "sku", "quantity", "amount_cents",
                                     "currency", "status", "decision")} == {
        "hq_order_id": hq_id, "site": "site-a", "order_id": "o-review", "sku": "card-1", "quantity": 2,
        "amount_cents": REVIEW_FROM, "currency": "CNY", "status": outcome, "decision": decision}
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.hq_order_id == hq_id))
        assert (row.decided_by, row.decided_at.replace(tzinfo=timezone.utc)) == ("op-jane", at)
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == f"review.{decision}")).one()
        assert (event.operator, event.site_id, event.detail) == (
            "op-jane", "site-a", {"hq_order_id": hq_id, "note": "called the buyer", "outcome": outcome})
    assert reviews.queue(hq) == []
    for unknown, status, code, detail in (
            ("hq_nope", 404, "not_found", "order 'hq_nope' does not exist"),
            (hq_id, 409, "not_in_review", f"order {hq_id!r} is {outcome}, not under review")):
        with pytest.raises(ApiError) as refused:
            reviews.resolve(hq, "op-jane", unknown, "approve")
        assert (refused.value.status, refused.value.code, refused.value.detail) == (status, code, detail)


def test_the_review_queue_is_oldest_first_per_site_and_bounded(hq):
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    submit(hq, "k1", [big("a-1"), big("a-2")])
    orders.submit(hq, orders.SiteContext("site-b", ("game",), ("CN",)), "b1",
                  OrderBatch.model_validate({"orders": [big("b-1")]}))
    submit(hq, "k2", [big("a-3")])
    assert [q["order_id"] for q in reviews.queue(hq)] == ["a-1", "a-2", "b-1", "a-3"]
    assert [q["order_id"] for q in reviews.queue(hq, "site-a")] == ["a-1", "a-2", "a-3"]
    assert [q["order_id"] for q in reviews.queue(hq, "site-b")] == ["b-1"]
    assert [q["order_id"] for q in reviews.queue(hq, limit=2)] == ["a-1", "a-2"]
    first = reviews.queue(hq, "site-b")[0]
    assert (first["reasons"], first["buyer"], first["received_at"][-1]) == (
        [f"amount_over:{REVIEW_FROM}"], {"account": "player-1", "contact": "buyer@example.cn", "ip": "198.51.100.7",
                                         "region": "CN"}, "Z")


def test_the_review_queue_shows_at_most_200_orders_unless_asked(hq):
    """The admin API's list of orders under review is bounded at 200 (the oldest); a caller may ask for fewer."""
    submit(hq, "k1", [big(f"a-{i:03}") for i in range(200)])
    submit(hq, "k2", [big("a-200")])
    queue = reviews.queue(hq)
    assert len(queue) == 200 and (queue[0]["order_id"], queue[-1]["order_id"]) == ("a-000", "a-199")
    assert len(reviews.queue(hq, limit=201)) == 201


def test_the_review_queue_order_is_arrival_not_storage_order(hq, db_url):
    """Oldest first whatever order the database happens to return rows in.

    On SQLite unordered SELECTs are made to come back reversed (PRAGMA reverse_unordered_selects); on PostgreSQL
    the oldest order is written again under its own id, which moves it to the end of the table and of its index.
    """
    from sqlalchemy import event

    submit(hq, "k1", [big("a-1"), big("a-2"), big("a-3")])
    if db_url is None:
        event.listen(hq.engine, "connect", lambda conn, _: conn.execute("PRAGMA reverse_unordered_selects = ON"))
        hq.engine.dispose()
    else:
        with hq.session() as s:
            rewrite_row(s, Order, Order.order_id == "a-1")
    assert [q["order_id"] for q in reviews.queue(hq)] == ["a-1", "a-2", "a-3"]


def test_review_approval_without_stock_is_a_reject(hq):
    results, _ = submit(hq, "k1", [big("o-review", quantity=2)])
    submit(hq, "k2", [small("o-take", quantity=3)])  # leaves one key
    resolved = reviews.resolve(hq, "op", results[0]["hq_order_id"], "approve")
    assert (resolved["decision"], resolved["status"]) == ("reject", "rejected")
    assert resolved["reasons"] == [f"amount_over:{REVIEW_FROM}", "out_of_stock", "operator:approve"]
    assert sold(hq) == 3


def test_only_orders_under_review_are_queued(hq):
    submit(hq, "k1", [big("o-review"), small("o-ok"), huge("o-no")])
    queue = reviews.queue(hq)
    assert [q["order_id"] for q in queue] == ["o-review"]
    assert queue[0]["amount_cents"] == REVIEW_FROM and queue[0]["status"] == "review"


def test_a_replay_gives_the_same_keys_again_and_takes_none(hq):
    first, _ = submit(hq, "k1", [small("o-1", quantity=2)])
    again, replayed = submit(hq, "k1", [small("o-1", quantity=2)])
    assert replayed and again[0]["delivery"] == first[0]["delivery"] and len(first[0]["delivery"]["card_keys"]) == 2
    mixed, replayed = submit(hq, "k2", [small("o-1", quantity=2), small("o-2")])  # per-order path
    assert not replayed and mixed[0]["delivery"] == first[0]["delivery"]
    assert orders.get_order(hq, "site-a", "o-1")["delivery"] == first[0]["delivery"]
    once_more, replayed = submit(hq, "k2", [small("o-1", quantity=2), small("o-2")])  # that key, finished
    assert replayed and [r["hq_order_id"] for r in once_more] == [r["hq_order_id"] for r in mixed]
    assert once_more[1]["delivery"] == mixed[1]["delivery"]
    assert sold(hq) == 3


def test_the_status_of_an_order_is_per_site(hq):
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    submit(hq, "k1", [small("o-1")])
    got = orders.get_order(hq, "site-a", "o-1")
    assert (got["order_id"], got["status"], got["replayed"]) == ("o-1", "delivered", False)
    for site, order_id in (("site-b", "o-1"), ("site-a", "o-404")):
        with pytest.raises(ApiError) as unknown:
            orders.get_order(hq, site, order_id)
        assert (unknown.value.status, unknown.value.code) == (404, "not_found")
        assert str(unknown.value.detail) == f"order {order_id!r} is unknown to HQ"


def test_statuses_answer_the_sites_known_orders_in_the_order_asked_as_each_stands(hq):
    """The agent's batch poll: an order delivered shows its keys, one under review none; unknown ids and another
    site's orders are left out; none of it is a replay."""
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    orders.submit(hq, orders.SiteContext("site-b", ("game",), ("CN",)), "b1",
                  OrderBatch.model_validate({"orders": [small("o-b")]}))
    first, _ = submit(hq, "k1", [small("o-1", quantity=2), big("o-2")])
    got = orders.statuses(hq, "site-a", ["o-2", "o-404", "o-b", "o-1"])
    assert [(r["order_id"], r["decision"], r["status"], r["replayed"]) for r in got] == [
        ("o-2", "review", "review", False), ("o-1", "approve", "delivered", False)]
    assert got[0]["delivery"] is None and got[0]["hq_order_id"] == first[1]["hq_order_id"]
    assert got[1]["delivery"] == first[0]["delivery"] and len(got[1]["delivery"]["card_keys"]) == 2
    assert got[0]["reasons"] == [f"amount_over:{REVIEW_FROM}"] and got[1]["reasons"] == []
    assert orders.statuses(hq, "site-a", []) == [] and sold(hq) == 3


def test_when_another_request_inserted_one_of_the_orders_meanwhile(hq, monkeypatch):
    """The batch insert met the unique constraint: each order is then settled alone, per site."""
    from sqlalchemy.exc import IntegrityError

    from hq import batch as batches

    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    ctx_b = orders.SiteContext("site-b", ("game",), ("CN",))
    orders.submit(hq, ctx_b, "b1", OrderBatch.model_validate({"orders": [small("o-1", quantity=2)]}))  # site-b's o-1
    first, _ = submit(hq, "k1", [small("o-1")])

    def raced(*args: Any) -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setattr(batches, "decide_new", raced)
    results, replayed = submit(hq, "k2", [small("o-1"), big("o-2")])  # site-b's different o-1 is not ours
    assert not replayed and results[0]["replayed"] and results[0]["delivery"] == first[0]["delivery"]
    assert_held_for_review(results[1])
    with pytest.raises(ApiError) as changed:
        submit(hq, "k3", [small("o-3"), small("o-1", quantity=3)])
    assert (changed.value.status, changed.value.code, changed.value.detail) == (
        422, "idempotency_conflict", "order 'o-1' was already sent with a different body")
    assert stored(hq, "o-3") is None  # refused before anything was decided
    again, replayed = submit(hq, "k2", [small("o-1"), big("o-2")])
    assert replayed and [r["hq_order_id"] for r in again] == [r["hq_order_id"] for r in results]


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_orders_that_cannot_be_fulfilled_are_rejected_with_the_reason_on_both_paths(hq, monkeypatch, path):
    if path == "per-order":
        from hq import batch as batches

        monkeypatch.setattr(batches, "decide_new", lambda *args, **kwargs: None)
    catalog.upsert(hq, "t", "phone-1", catalog.ItemSpec(name="p", category="phone", face_value_cents=100, price_cents=90))
    catalog.upsert(hq, "t", "off-1", catalog.ItemSpec(name="o", category="game", face_value_cents=100, price_cents=90,
                                                     status="inactive"))
    catalog.upsert(hq, "t", "top-1", catalog.ItemSpec(name="t", category="game", face_value_cents=100, price_cents=90,
                                                     stock_kind="direct_topup", account_pattern=r"[0-9]{5,10}",
                                                     min_qty=2, max_qty=3))
    catalog.upsert(hq, "t", "top-2", catalog.ItemSpec(name="t", category="game", face_value_cents=100, price_cents=90,
                                                     stock_kind="direct_topup", account_pattern="x"))
    with hq.session() as s:  # a pattern the catalog API refuses, as an older version may have stored it
        s.get(CatalogItem, "top-2").account_pattern = "("
    cases = [
        (order("c1", sku="no-such-sku"), "unknown_sku"),
        (order("c2", sku="phone-1"), "category_not_licensed"),  # the licence has game only
        (order("c3", sku="off-1"), "sku_inactive"),
        (order("c4", sku="top-1", quantity=1, account="12345"), "quantity_out_of_range:2-3"),
        (order("c5", sku="top-1", quantity=4, account="12345"), "quantity_out_of_range:2-3"),
        (order("c6", sku="top-1", quantity=2, account="1234"), "account_mismatch"),
        (order("c7", sku="top-1", quantity=2, account=None), "account_mismatch"),
        (order("c8", sku="top-2", quantity=1, account="x"), "account_mismatch"),  # a broken pattern matches nothing
    ]
    results, _ = submit(hq, "k1", [o for o, _ in cases] + [order("ok-1", sku="top-1", quantity=3, account="1234567890",
                                                                unit_price_cents=100)])
    for (o, reason), result in zip(cases, results):
        assert (result["order_id"], result["decision"], result["status"], result["reasons"], result["delivery"]) == (
            o["order_id"], "reject", "rejected", [reason], None)
    assert (results[-1]["decision"], results[-1]["status"], results[-1]["delivery"]) == ("approve", "delivered",
                                                                                       {"card_keys": []})
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.order_id == "c4"))
        assert (row.hq_price_cents, row.unit_price_cents, row.quantity, row.buyer_account, row.buyer_contact,
                row.buyer_ip, row.buyer_region, row.decided_by) == (90, 9900, 1, "12345", "buyer@example.cn",
                                                                   "198.51.100.7", "CN", "risk-engine")
        assert s.scalar(select(Order).where(Order.order_id == "c1")).hq_price_cents is None
    assert sold(hq) == 0


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_risk_signals_reach_the_engine_on_both_paths(hq, monkeypatch, path):
    if path == "per-order":
        from hq import batch as batches

        monkeypatch.setattr(batches, "decide_new", lambda *args, **kwargs: None)
    hq.rules.save(parse_rules({**RULES, "block": {"accounts": ["bad-acc"], "contacts": ["bad@x.cn"],
                                                  "ips": ["203.0.113.0/24"], "regions": ["KP"]},
                               "foreign_region_action": "review",
                               "site_daily": {"max_orders": 5, "max_amount_cents": 10**9, "action": "review"}}))
    results, _ = submit(hq, "k1", [
        order("s1", sku="card-1", unit_price_cents=100, account="bad-acc"),
        order("s2", sku="card-1", unit_price_cents=100, contact="bad@x.cn"),
        order("s3", sku="card-1", unit_price_cents=100, ip="203.0.113.9"),
        order("s4", sku="card-1", unit_price_cents=100, region="KP"),
        order("s5", sku="card-1", unit_price_cents=100, region="JP"),
        order("s6", sku="card-1", unit_price_cents=100),  # the site's sixth order today
    ])
    assert [(r["decision"], r["reasons"]) for r in results] == [
        ("reject", ["blocked_account"]), ("reject", ["blocked_contact"]), ("reject", ["blocked_ip"]),
        ("reject", ["blocked_region", "region_outside_licence:KP"]), ("review", ["region_outside_licence:JP"]),
        ("review", ["site_daily_orders:5"])]


@pytest.mark.parametrize("path", ["batch", "per-order"])
def test_each_velocity_signal_counts_the_earlier_orders_of_the_same_batch_on_both_paths(hq, monkeypatch, path):
    """Account, contact and IP each have their own count: at most 2 earlier orders in 10 minutes per value, so the
    third order of one value goes to review, whichever signal it shares; orders of other values are not counted."""
    if path == "per-order":
        from hq import batch as batches

        monkeypatch.setattr(batches, "decide_new", lambda *args, **kwargs: None)
    hq.rules.save(parse_rules({**RULES, "velocity": [
        {"key": key, "window_seconds": 600, "max_orders": 2, "action": "review"} for key in ("account", "contact", "ip")]}))

    def buyer(order_id: str, account: str, contact: str, ip: str) -> dict[str, Any]:
        return order(order_id, sku="card-1", unit_price_cents=100, account=account, contact=contact, ip=ip)

    results, _ = submit(hq, "k1", [
        buyer("a1", "acc-a", "c1@x.cn", "198.51.100.1"), buyer("a2", "acc-a", "c2@x.cn", "198.51.100.2"),
        buyer("a3", "acc-a", "c3@x.cn", "198.51.100.3"),  # acc-a's third
        buyer("c4", "acc-b", "c1@x.cn", "198.51.100.4"),
        buyer("c5", "acc-c", "c1@x.cn", "198.51.100.5"),  # c1's third
        buyer("i6", "acc-d", "c6@x.cn", "198.51.100.1"),
        buyer("i7", "acc-e", "c7@x.cn", "198.51.100.1"),  # .1's third
    ])
    assert [(r["order_id"], r["decision"], r["reasons"]) for r in results] == [
        ("a1", "approve", []), ("a2", "approve", []), ("a3", "review", ["velocity_account:2/600s"]),
        ("c4", "approve", []), ("c5", "review", ["velocity_contact:2/600s"]),
        ("i6", "approve", []), ("i7", "review", ["velocity_ip:2/600s"])]


def test_each_decided_order_is_counted_once_under_its_decision_and_its_rules(hq):
    """HQ's metrics count an order when it is decided, on the batch and the per-order path; a replay is not counted."""
    from hq.metrics import metrics

    m = metrics()

    def counts() -> dict[str, float]:
        got = {d: m.decisions.labels(d)._value.get() for d in ("approve", "review", "reject")}
        got.update({f"amount_over/{d}": m.rules.labels("amount_over", d)._value.get() for d in ("review", "reject")})
        return got

    before = counts()
    submit(hq, "k1", [small("o-1"), big("o-2"), huge("o-3")])  # batch path
    submit(hq, "k1", [small("o-1"), big("o-2"), huge("o-3")])  # the same key again: a replay
    submit(hq, "k2", [small("o-1"), small("o-4"), big("o-5")])  # a known order in it: the per-order path
    after = counts()
    assert {k: after[k] - before[k] for k in after} == {
        "approve": 2, "review": 2, "reject": 1, "amount_over/review": 2, "amount_over/reject": 1}
