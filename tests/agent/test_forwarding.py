"""Order forwarding against the real HQ: decisions, card keys sealed, exactly-once, reviews."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.hq_client import plain
from agent.outbox import idempotency_key, order_payload
from sitedb.models import Order
from sitedb.sealing import open_sealed
from tests.agent.helpers import OPEN_RULES, hq_order_counts, order_counts, write_orders


def orders(engine) -> dict[str, Order]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return {o.id: o for o in s.scalars(select(Order))}


def test_card_keys_delivered_sealed_and_decisions_stored(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sku = f"card-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    keys = hq.seed_card_keys(sku, 3)
    approved = write_orders(engine, 2, sku)
    missing_stock = write_orders(engine, 2, sku)  # only 3 keys: one of these is out of stock
    unknown = write_orders(engine, 1, "no-such-sku")
    outcome = started.forwarder.forward_once()
    assert outcome.sent == 5 and outcome.decided == 5
    got = orders(engine)
    delivered = [o for o in got.values() if o.status == "delivered"]
    assert len(delivered) == 3
    secrets = {k["secret"] for k in keys}
    for o in delivered:
        assert o.decision == "approve" and o.decided_at is not None and o.hq_order_id
        assert secrets.issuperset(k["secret"] for k in open_sealed(site.site_key, o.delivery_sealed)["card_keys"])
        assert "secret" not in o.delivery_sealed  # stored encrypted, not as JSON
    rejected = [o for o in got.values() if o.status == "rejected"]
    assert {o.id for o in rejected} >= set(unknown) and len(rejected) == 2
    assert all(o.public_reason and o.reasons for o in rejected)
    assert set(approved) <= {o.id for o in delivered}
    assert missing_stock  # (used above through the set of rejected)
    assert started.metrics.orders_forwarded.labels("approve")._value.get() == 3
    assert started.forwarder.forward_once().sent == 0  # nothing pending any more


def test_crash_after_hq_answered_replays_the_same_decision(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sku = f"card-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    hq.seed_card_keys(sku, 4)
    ids = write_orders(engine, 2, sku)
    pending = started.forwarder.due_orders(200)
    # the agent sent the batch and died before writing the answer
    first = started.forwarder.client.submit_orders([order_payload(o, started.forwarder.buyers) for o in pending],
                                                  idempotency_key(site.site_id, [o.id for o in pending]))
    assert not any(r.replayed for r in first)
    # new orders arrived meanwhile: the next batch differs, HQ deduplicates per order id
    ids += write_orders(engine, 1, sku)
    outcome = started.forwarder.forward_once()
    assert outcome.decided == 3
    got = orders(engine)
    for r in first:  # the same decision and the same card keys as the first answer
        stored = open_sealed(site.site_key, got[r.order_id].delivery_sealed)
        assert stored == plain(r.delivery) and got[r.order_id].hq_order_id == r.hq_order_id
    assert hq_order_counts(hq, site.site_id) == (3, 3)
    assert order_counts(engine) == {"delivered": 3}


def test_review_is_polled_until_an_operator_decides(hq, started, engine) -> None:  # type: ignore[no-untyped-def]
    hq.set_rules({**OPEN_RULES, "limits": {**OPEN_RULES["limits"], "review_amount_cents": 50_000}})
    hq.seed_item("topup-big", category="game", price_cents=60_000, stock_kind="direct_topup")
    [oid] = write_orders(engine, 1, "topup-big", unit_price_cents=60_000)
    started.forwarder.review_poll = 0.01
    started.forwarder.forward_once()
    order = orders(engine)[oid]
    assert (order.status, order.decision, order.public_reason) == ("review", "review", "under review by HQ risk control")
    assert started.forwarder.poll_reviews_once() == 0  # still under review: rescheduled
    resp = httpx.post(f"{hq.url}/v1/admin/reviews/{order.hq_order_id}/resolve", headers=hq.admin_headers(),
                      json={"decision": "approve"})
    assert resp.status_code == 200, resp.text
    with Session(engine) as s, s.begin():  # make the next poll due now
        s.get(Order, oid).next_attempt_at = s.get(Order, oid).created_at
    assert started.forwarder.poll_reviews_once() == 1
    order = orders(engine)[oid]
    assert (order.status, order.decision) == ("delivered", "approve") and order.decided_at is not None


def test_burst_keeps_the_next_batch_in_flight_and_decides_each_order_once(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    hq.seed_item("topup-burst", category="game", price_cents=1000, stock_kind="direct_topup")
    ids = write_orders(engine, 450, "topup-burst", unit_price_cents=1000)
    forwarder = started.forwarder
    sent_batches: list[list[str]] = []
    submit = forwarder.submit

    def recording_submit(orders):  # type: ignore[no-untyped-def]
        sent_batches.append([o.id for o in orders])
        return submit(orders)

    forwarder.submit = recording_submit
    outcome = forwarder.forward_burst()
    assert (outcome.sent, outcome.decided, outcome.more) == (450, 450, False)
    assert [len(b) for b in sent_batches] == [200, 200, 50]
    flat = [i for b in sent_batches for i in b]
    assert len(flat) == len(set(flat)) == 450 and set(flat) == set(ids)  # no order sent twice
    assert order_counts(engine) == {"delivered": 450}
    assert hq_order_counts(hq, site.site_id) == (450, 450)
    assert started.metrics.orders_forwarded.labels("approve")._value.get() == 450


def test_burst_stops_sending_when_asked_and_finishes_the_batch_in_flight(hq, started, engine) -> None:  # type: ignore[no-untyped-def]
    hq.seed_item("topup-stop", category="game", price_cents=1000, stock_kind="direct_topup")
    write_orders(engine, 450, "topup-stop", unit_price_cents=1000)
    started.forwarder.batch = 100
    outcome = started.forwarder.forward_burst(keep_going=lambda: False)
    assert (outcome.sent, outcome.decided) == (100, 100)
    assert order_counts(engine) == {"delivered": 100, "pending": 350}
    bounded = started.forwarder.forward_burst(max_batches=2)
    assert (bounded.sent, bounded.more) == (200, True)
    assert started.forwarder.forward_burst().decided == 150
    assert order_counts(engine) == {"delivered": 450}
