"""Money after the checkout, through the agent against the real HQ and the epay sandbox.

A site's discount reaches HQ in the order (the buyer pays what the shop showed),
and a refund HQ makes after delivery reaches the shop's order row through the
ledger entries the agent copies (the agent no longer asks HQ about delivered
orders). SQLite and PostgreSQL site databases.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hq.models import Order as HQOrder
from hq.payments import refunds
from hq.payments.sandbox_epay import EpaySandbox
from sitedb.models import Order
from sitedb.tables import audit_log
from storefront.orders import order_view
from tests.agent.helpers import write_orders
from tests.agent.test_payments import _pay, _row, sandbox  # noqa: F401  (the fixture)


def _paid_and_delivered(started, engine, box: EpaySandbox, oid: str) -> Order:  # type: ignore[no-untyped-def]
    started.forwarder.payment_poll = 0.01
    assert started.forwarder.forward_once().decided == 1
    _pay(box, _row(engine, oid).payment["pay_url"])
    for _ in range(200):
        started.forwarder.poll_reviews_once()
        if _row(engine, oid).status == "delivered":
            break
        time.sleep(0.05)
    return _row(engine, oid)


def _awaiting(hq, started, engine, site, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    """`n` orders HQ approved and that now await the buyer's payment (the agent asks every 0.01 s)."""
    sku = f"card-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    hq.seed_card_keys(sku, n)
    ids = write_orders(engine, n, sku)
    started.forwarder.payment_poll = 0.01
    assert started.forwarder.forward_once().decided == n
    return ids


def _discount(engine, oid: str, discount: int) -> None:  # type: ignore[no-untyped-def]
    """The checkout took a coupon off, as storefront.checkout writes it."""
    with engine.begin() as conn:
        conn.execute(update(Order).where(Order.id == oid).values(
            discount_cents=discount, total_cents=Order.unit_price_cents * Order.quantity - discount))


def test_the_buyer_pays_the_total_the_shop_showed(hq, sandbox, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sku = f"card-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    hq.seed_card_keys(sku, 1)
    [oid] = write_orders(engine, 1, sku)  # 100.00
    _discount(engine, oid, 800)
    row = _paid_and_delivered(started, engine, sandbox, oid)
    assert row.status == "delivered"
    trade = next(t for t in sandbox.trades.values() if t.name.startswith(sku))
    assert trade.money == "92.00"  # charged at the gateway: the discounted total, not 100.00
    with hq.service.session() as s:
        held = s.scalar(select(HQOrder).where(HQOrder.site_id == site.site_id, HQOrder.order_id == oid))
        assert held.total_cents == 9200 and held.unit_price_cents == 10000


def test_a_refund_after_delivery_reaches_the_shops_order_page(hq, sandbox, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sku = f"card-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    hq.seed_card_keys(sku, 1)
    [oid] = write_orders(engine, 1, sku)
    row = _paid_and_delivered(started, engine, sandbox, oid)
    assert row.status == "delivered" and row.delivery_sealed
    started.settlement.run()
    assert _row(engine, oid).status == "delivered"  # the order's ledger entry alone changes nothing
    refunds.refund(hq.service, "op", row.hq_order_id, "buyer complained")
    assert started.forwarder.poll_reviews_once() == 0  # the agent does not ask about delivered orders
    started.settlement.run()
    got = _row(engine, oid)
    assert (got.status, got.public_reason) == ("refunded", "payment refunded") and "refunded" in got.reasons
    with Session(engine) as s:
        view = order_view(s, oid, site.site_key, None)
    assert view.status == "refunded" and not view.card_keys  # the order page: refunded, no keys shown
    assert started.metrics.payments_resolved.labels("refunded")._value.get() == 1

    started.settlement.run()  # the entry is read again (HQ's cursor holds recent entries back): nothing changes
    with engine.connect() as conn:
        audited = conn.scalar(select(func.count()).select_from(audit_log).where(audit_log.c.action == "order_refunded"))
    assert audited == 1 and started.metrics.payments_resolved.labels("refunded")._value.get() == 1


def test_one_request_asks_about_every_order_awaiting_payment(hq, sandbox, started, engine, site,  # type: ignore[no-untyped-def]
                                                               monkeypatch) -> None:
    ids = _awaiting(hq, started, engine, site, 3)
    asked: list[list[str]] = []
    batch = started.forwarder.client.orders_status
    monkeypatch.setattr(started.forwarder.client, "orders_status", lambda order_ids: asked.append(order_ids) or
                        batch(order_ids))
    monkeypatch.setattr(started.forwarder.client, "order_status", lambda order_id: pytest.fail("asked one by one"))
    time.sleep(0.02)
    assert started.forwarder.poll_reviews_once() == 0  # none paid yet
    assert len(asked) == 1 and sorted(asked[0]) == sorted(ids)
    _pay(sandbox, _row(engine, ids[1]).payment["pay_url"])
    polls = 1
    for _ in range(200):
        time.sleep(0.05)
        polls += 1
        if started.forwarder.poll_reviews_once():
            break
    assert _row(engine, ids[1]).status == "delivered" and _row(engine, ids[0]).status == "pending_payment"
    assert len(asked) == polls  # one request a poll, however many orders wait


def test_an_hq_without_the_batch_endpoint_is_asked_order_by_order(hq, sandbox, started, engine, site,  # type: ignore[no-untyped-def]
                                                                   monkeypatch) -> None:
    from agent.hq_client import HQError

    ids = _awaiting(hq, started, engine, site, 2)

    def old_hq(order_ids: list[str]) -> list:  # type: ignore[type-arg]
        raise HQError("orders_status", "client", "Method Not Allowed", status=405)

    monkeypatch.setattr(started.forwarder.client, "orders_status", old_hq)
    one = started.forwarder.client.order_status
    asked: list[str] = []
    monkeypatch.setattr(started.forwarder.client, "order_status", lambda order_id: asked.append(order_id) or one(order_id))
    time.sleep(0.02)
    started.forwarder.poll_reviews_once()
    assert sorted(asked) == sorted(ids)
