"""Orders HQ approves for payment: the pay link reaches the order row, the agent asks again until paid.

The real HQ (epay enabled with the sandbox's credentials) and the epay sandbox;
the site database on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq.clock import utcnow
from hq.payments import config, flow
from hq.payments.sandbox_epay import EpaySandbox, serving
from sitedb.models import Order
from sitedb.sealing import open_sealed
from tests.agent.helpers import order_counts, wait_until, write_orders


@pytest.fixture(scope="module")
def sandbox(shared_hq) -> Iterator[EpaySandbox]:  # type: ignore[no-untyped-def]
    with serving(EpaySandbox(notify_delay=0.1)) as box:
        pid, key = box.add_merchant()
        config.configure(shared_hq.service, "tester", "epay", {"api_url": box.url, "pid": pid, "key": key})
        yield box


def _row(engine, order_id: str) -> Order:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return s.get(Order, order_id)


def _pay(box: EpaySandbox, pay_url: str) -> None:
    assert httpx.get(pay_url).status_code == 200  # the buyer opens the link: the sandbox checks HQ's signature
    trade = next(t for t in box.trades.values() if t.out_trade_no in pay_url)
    box.pay(trade.trade_no)


def test_pay_link_is_stored_then_the_paid_order_is_delivered(hq, sandbox, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sku = f"card-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    keys = hq.seed_card_keys(sku, 1)
    [oid] = write_orders(engine, 1, sku)
    started.forwarder.payment_poll = 0.01
    assert started.forwarder.forward_once().decided == 1
    row = _row(engine, oid)
    assert (row.status, row.decision, row.delivery_sealed) == ("pending_payment", "approve", None)
    assert row.payment["amount_cents"] == 10000 and row.payment["pay_url"].startswith(sandbox.url)
    assert row.payment["qr"] and row.payment["expires_at"]
    assert started.forwarder.poll_reviews_once() == 0  # not paid yet: asked again later, nothing changes
    assert _row(engine, oid).status == "pending_payment"
    _pay(sandbox, row.payment["pay_url"])
    for _ in range(100):
        started.forwarder.poll_reviews_once()
        if _row(engine, oid).status == "delivered":
            break
        time.sleep(0.05)
    row = _row(engine, oid)
    assert row.status == "delivered"
    assert open_sealed(site.site_key, row.delivery_sealed)["card_keys"][0]["secret"] == keys[0]["secret"]
    assert started.metrics.payments_resolved.labels("delivered")._value.get() == 1


def test_an_unpaid_order_ends_expired(hq, sandbox, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sku = f"card-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    hq.seed_card_keys(sku, 1)
    [oid] = write_orders(engine, 1, sku)
    started.forwarder.payment_poll = 0.01
    started.forwarder.forward_once()
    assert _row(engine, oid).status == "pending_payment"
    flow.sweep(hq.service, utcnow() + timedelta(seconds=hq.service.settings.payment_expiry_seconds + 1))
    # this test's polls, or the running agent's own (which may have just set the next poll a moment ahead),
    # learn it: either way it lands once
    wait_until(lambda: started.forwarder.poll_reviews_once() >= 0 and _row(engine, oid).status == "expired", 10,
               what="the expiry learnt")
    row = _row(engine, oid)
    assert (row.status, row.public_reason, row.delivery_sealed) == ("expired", "not paid in time", None)
    assert order_counts(engine) == {"expired": 1}
