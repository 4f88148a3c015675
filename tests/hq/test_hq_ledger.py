"""The ledger: every paid order posts gross, HQ's cost and HQ's share in its own transaction; refunds,
base fees, adjustments and reversals; once per source; never edited; debits equal credits."""

from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy import text

from hq import reviews
from hq.errors import ApiError
from hq.ledger import accounts, events
from hq.risk import parse_rules
from hq.service import HQ
from kitcore.errors import InvalidInput
from tests.hq.ledger_support import HQ_PRICE, buy, entry_count, open_settlement_hq
from tests.hq.test_hq_risk import QUIET


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_settlement_hq(tmp_path / "hq", db_url)
    yield service
    service.close()


def _balance(hq: HQ, site: str) -> int:
    with hq.read() as conn:
        return accounts.site_balance(conn, site)


def _balanced(hq: HQ) -> accounts.TrialBalance:
    with hq.read() as conn:
        return accounts.trial_balance(conn)


def test_a_paid_order_posts_gross_cost_and_share(hq):
    result = buy(hq, "site-a", "o1", unit_price=4700, quantity=2)
    assert result["status"] == "delivered"
    with hq.read() as conn:
        assert accounts.balances(conn) == {
            "hq:clearing": 9400, "site:site-a": -9400 + 2 * HQ_PRICE + 1128,
            "hq:cost": -2 * HQ_PRICE, "hq:share": -1128}  # 12% of 9400 = 1128
    assert _balance(hq, "site-a") == 9400 - 180 - 1128
    assert _balanced(hq).balanced and _balanced(hq).debits == 9400 + 180 + 1128


def test_a_sale_at_hq_price_leaves_the_site_minus_the_share(hq):
    """The storefront's unexplained -7.05: 47.00 sold at HQ's price 47.00 on basic (15%)."""
    from hq import catalog

    catalog.upsert(hq, "t", "topup", catalog.ItemSpec(name="topup", category="game", face_value_cents=5000,
                                                     price_cents=4700, stock_kind="direct_topup"))
    buy(hq, "site-b", "o1", unit_price=4700)
    assert _balance(hq, "site-b") == -705


def test_rejected_and_review_orders_post_nothing_until_approved(hq):
    hq.rules.save(parse_rules({**QUIET, "limits": {**QUIET["limits"], "review_amount_cents": 1000}}))
    result = buy(hq, "site-a", "big", unit_price=5000)
    assert result["status"] == "review" and entry_count(hq) == 0
    reviews.resolve(hq, "op", result["hq_order_id"], "approve")  # the per-order fulfilment path
    assert entry_count(hq, "order") == 1
    assert _balance(hq, "site-a") == 5000 - HQ_PRICE - 600
    assert _balanced(hq).balanced


def test_a_replayed_batch_posts_nothing_twice(hq):
    buy(hq, "site-a", "o1", unit_price=1000, key="same")
    buy(hq, "site-a", "o1", unit_price=1000, key="same")  # Idempotency-Key replay
    buy(hq, "site-a", "o1", unit_price=1000, key="other")  # the same order in another request
    assert entry_count(hq, "order") == 1


def test_posting_the_same_order_event_again_writes_nothing(hq):
    result = buy(hq, "site-a", "o1", unit_price=1000)
    paid = events.PaidOrder("site-a", result["hq_order_id"], "o1", 1, 1000, HQ_PRICE, "game")
    with hq.connection() as conn:
        events.order_paid(conn, [paid])
    assert entry_count(hq) == 1


def test_category_rate_overrides_the_licence_rate_from_its_day_on(hq):
    from datetime import timedelta

    from hq.clock import utcnow
    from hq.ledger import rates

    tomorrow = utcnow().date() + timedelta(days=1)
    rates.set_rate(hq, "op", "share_bps", 800, tomorrow, category="phone")
    buy(hq, "site-a", "today", unit_price=10000, sku="phone-10")
    assert _balance(hq, "site-a") == 10000 - HQ_PRICE - 1200  # not yet in force: the licence's 12%
    with hq.connection() as conn:
        later = utcnow() + timedelta(days=1)
        events.order_paid(conn, [events.PaidOrder("site-a", "hq_later", "later", 1, 10000, HQ_PRICE, "phone")], at=later)
    assert _balance(hq, "site-a") == 2 * (10000 - HQ_PRICE) - 1200 - 800


def test_refund_reverses_the_order_once(hq):
    result = buy(hq, "site-a", "o1", unit_price=2500)
    refund = events.refund(hq, "op", result["hq_order_id"], "buyer cancelled")
    assert refund["site_fen"] == -(2500 - HQ_PRICE - 300)
    assert _balance(hq, "site-a") == 0
    with hq.read() as conn:
        assert set(accounts.balances(conn).values()) == {0}
    with pytest.raises(ApiError, match="already refunded"):
        events.refund(hq, "op", result["hq_order_id"], "again")
    with pytest.raises(ApiError, match="no paid entry"):
        events.refund(hq, "op", "hq_unknown", "never paid")
    assert entry_count(hq) == 2


def test_base_fee_once_a_year_at_the_tier_rate(hq):
    from datetime import timedelta

    from hq.clock import utcnow
    from hq.ledger import rates

    rates.set_rate(hq, "op", "base_fee", 300_000, utcnow().date() + timedelta(days=1), tier="basic")
    assert events.base_fee(hq, "op", "site-a", 2027)["site_fen"] == -rates.DEFAULTS["base_fee"]
    with pytest.raises(ApiError, match="already charged"):
        events.base_fee(hq, "op", "site-a", 2027)
    later = utcnow() + timedelta(days=1)
    assert events.base_fee(hq, "op", "site-b", 2027, at=later)["site_fen"] == -300_000
    with pytest.raises(ApiError, match="no licence"):
        events.base_fee(hq, "op", "nobody", 2027)
    with pytest.raises(InvalidInput, match="year"):
        events.base_fee(hq, "op", "site-a", 1999)


def test_adjustment_needs_a_reason_and_can_be_reversed(hq):
    entry = events.adjust(hq, "op", "site-a", 1234, "dispute #7: two orders counted once")
    assert _balance(hq, "site-a") == 1234 and entry["memo"].startswith("dispute #7")
    for bad in ("", "two\nlines"):
        with pytest.raises(InvalidInput, match="reason"):
            events.adjust(hq, "op", "site-a", 10, bad)
    with pytest.raises(InvalidInput, match="non-zero"):
        events.adjust(hq, "op", "site-a", 0, "nothing")
    events.reverse(hq, "op", entry["id"], "posted twice")
    assert _balance(hq, "site-a") == 0
    with pytest.raises(ApiError, match="already reversed"):
        events.reverse(hq, "op", entry["id"], "again")
    assert entry_count(hq) == 2


def test_orders_are_refunded_not_reversed(hq):
    buy(hq, "site-a", "o1", unit_price=1000)
    with pytest.raises(ApiError, match="refund the order instead"):
        events.reverse(hq, "op", 1, "no")


@pytest.mark.parametrize("statement", ["UPDATE ledger_lines SET amount_fen = 0", "DELETE FROM ledger_lines",
                                       "UPDATE ledger_entries SET memo = 'x'", "DELETE FROM ledger_entries"])
def test_the_database_refuses_to_edit_ledger_rows(hq, statement):
    buy(hq, "site-a", "o1", unit_price=1000)
    with pytest.raises(Exception, match="never edited"):
        with hq.connection() as conn:
            conn.execute(text(statement))
    assert _balance(hq, "site-a") == 1000 - HQ_PRICE - 120


def test_an_unbalanced_entry_is_never_written(hq):
    from hq.clock import utcnow
    from hq.ledger.entries import Entry, Line, Unbalanced, post

    with pytest.raises(Unbalanced):
        with hq.connection() as conn:
            post(conn, [Entry("site-a", "adjustment", "x", utcnow(), (Line("hq:adjustments", "adjustment", 5),
                                                                      Line("site:site-a", "adjustment", -4)))])
    assert entry_count(hq) == 0


def test_a_paid_order_is_posted_at_the_time_hq_decided_it(hq, monkeypatch):
    """The entries carry the decision's time on HQ's clock (the same instant as the order's), not a later one."""
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import select

    from hq import batch
    from hq.models import LedgerEntry

    decided = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=7)
    monkeypatch.setattr(batch, "utcnow", lambda: decided)
    assert buy(hq, "site-a", "o1", unit_price=4700)["status"] == "delivered"
    with hq.read() as conn:
        posted = conn.execute(select(LedgerEntry.posted_at)).scalars().all()
    assert posted and {p.replace(tzinfo=timezone.utc) if p.tzinfo is None else p for p in posted} == {decided}
