"""A site's discount (coupon) reaches HQ: the buyer is charged what the shop showed, and the ledger posts it.

The order HQ receives carries `total_cents` (list price × quantity less the site's
discount). HQ refuses a total above the list price or below zero, opens the
payment for the total, and posts the total as the order's gross; HQ's cost stays
HQ's price × quantity, so a discount below HQ's price is the site's own loss and
the ledger still balances.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from hq.clock import utcnow
from hq.ledger import accounts, statements
from hq.models import LedgerEntry, LedgerLine, Order
from hq.testing import RunningHQ
from tests.hq.helpers import auth, http, order, post_orders
from tests.hq.test_hq_payments import SITE, _wait_status, paying, sandbox  # noqa: F401  (fixtures)

LIST = 9500  # the site's unit price of card-p; HQ's price is 9000


def _discounted(order_id: str, total: Any, quantity: int = 1) -> dict[str, Any]:
    body = {**order(order_id, sku="card-p", quantity=quantity, unit_price_cents=LIST),
            "created_at": "2030-01-01T00:00:00Z"}  # the same body when sent again
    return body if total is None else {**body, "total_cents": total}


def _entry_lines(hq: RunningHQ, hq_order_id: str) -> dict[tuple[str, str], int]:
    with hq.service.read() as conn:
        rows = conn.execute(select(LedgerLine.account, LedgerLine.role, LedgerLine.amount_fen)
                            .join(LedgerEntry, LedgerEntry.id == LedgerLine.entry_id)
                            .where(LedgerEntry.kind == "order", LedgerEntry.source == hq_order_id)).all()
    return {(a, r): int(v) for a, r, v in rows}


def _pay(box, result: dict[str, Any]) -> Any:  # type: ignore[no-untyped-def]
    resp = http.get(result["payment"]["pay_url"])
    assert resp.status_code == 200, resp.text
    out_trade_no = parse_qs(urlsplit(result["payment"]["pay_url"]).query)["out_trade_no"][0]
    trade = box.by_out_trade_no(next(iter(box.merchants)), out_trade_no)
    box.pay(trade.trade_no)
    return trade


def test_the_buyer_with_a_coupon_pays_the_discounted_amount_and_the_ledger_and_statement_show_it(paying):
    hq, token, box = paying
    resp = post_orders(hq, token, "k-D1", [_discounted("D1", 9200)])
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]
    assert result["status"] == "pending_payment" and result["payment"]["amount_cents"] == 9200
    assert "money=92.00" in result["payment"]["pay_url"]
    trade = _pay(box, result)
    assert trade.money == "92.00"  # what the sandbox charged the buyer
    _wait_status(hq, token, "D1", "delivered")
    lines = _entry_lines(hq, result["hq_order_id"])
    site = accounts.site_account(SITE)
    assert lines[(accounts.CLEARING, "gross")] == 9200 and lines[(site, "gross")] == -9200
    assert lines[(site, "hq_cost")] == 9000  # HQ's price is unchanged by the site's coupon
    today = utcnow().date()
    with hq.service.read() as conn:
        start, end = statements.period("monthly", today)
        figures = statements.totals(conn, statements.Period(SITE, "monthly", start, end))
        assert accounts.trial_balance(conn).balanced
    assert figures["orders_gross"] == 9200 and figures["hq_cost"] == -9000


def test_a_discount_below_hqs_price_is_the_sites_loss_and_the_ledger_balances(paying):
    hq, token, box = paying
    result = post_orders(hq, token, "k-D2", [_discounted("D2", 5000)]).json()["results"][0]
    assert result["payment"]["amount_cents"] == 5000
    _pay(box, result)
    _wait_status(hq, token, "D2", "delivered")
    lines = _entry_lines(hq, result["hq_order_id"])
    site = accounts.site_account(SITE)
    share = lines[(site, "hq_share")]
    assert lines[(accounts.CLEARING, "gross")] == 5000 and lines[(accounts.COST, "hq_cost")] == -9000
    with hq.service.read() as conn:
        assert accounts.trial_balance(conn).balanced
        assert accounts.site_balance(conn, SITE) == 5000 - 9000 - share  # the site owes HQ the difference


@pytest.mark.parametrize("total, message", [
    (LIST + 1, "total_above_list_price"), (-1, "greater than or equal to 0"), (92.5, "integer"), ("9200", "integer"),
])
def test_a_total_above_the_list_price_or_not_a_whole_fen_amount_is_refused(paying, total, message):
    hq, token, _ = paying
    resp = post_orders(hq, token, "k-D3", [_discounted("D3", total)])
    assert resp.status_code == 422 and message in resp.text, resp.text
    with hq.service.read() as conn:
        assert conn.execute(select(func.count()).select_from(Order)).scalar() == 0


def test_a_total_equal_to_the_list_price_is_the_same_order_as_one_without_it(paying):
    hq, token, _ = paying
    first = post_orders(hq, token, "k-D4", [_discounted("D4", None, quantity=2)])
    assert first.status_code == 200 and first.json()["results"][0]["payment"]["amount_cents"] == 2 * LIST
    again = post_orders(hq, token, "k-D4b", [_discounted("D4", 2 * LIST, quantity=2)])  # an upgraded agent resends
    assert again.status_code == 200 and again.json()["results"][0]["replayed"] is True
    changed = post_orders(hq, token, "k-D4c", [_discounted("D4", 2 * LIST - 1, quantity=2)])
    assert changed.status_code == 422 and "idempotency_conflict" in changed.text


def test_without_a_gateway_both_decision_paths_post_the_discounted_gross(paying):
    from hq.payments import config

    hq, token, _ = paying
    config.disable(hq.service, "tester", "epay")  # test mode: approval delivers and posts at once
    batch = post_orders(hq, token, "k-D5", [_discounted("D5", 9100)]).json()["results"][0]
    assert batch["status"] == "delivered"
    # D5 is known now, so this batch goes the per-order path for D6
    one = post_orders(hq, token, "k-D6", [_discounted("D5", 9100), _discounted("D6", 9300)]).json()["results"][1]
    assert one["status"] == "delivered"
    assert _entry_lines(hq, batch["hq_order_id"])[(accounts.CLEARING, "gross")] == 9100
    assert _entry_lines(hq, one["hq_order_id"])[(accounts.CLEARING, "gross")] == 9300


def test_the_operator_and_the_site_see_the_amount_charged(paying):
    from hq import reviews

    hq, token, _ = paying
    assert post_orders(hq, token, "k-D7", [_discounted("D7", 9000)]).status_code == 200
    with hq.service.session() as s:
        row = s.scalar(select(Order).where(Order.order_id == "D7"))
        assert row.total_cents == 9000 and reviews.review_json(row)["amount_cents"] == 9000
    assert http.get(f"{hq.url}/v1/orders/D7", headers=auth(token)).json()["payment"]["amount_cents"] == 9000


def test_one_request_answers_for_many_orders_of_the_site_only(paying):
    hq, token, _ = paying
    for oid in ("S1", "S2"):
        assert post_orders(hq, token, f"k-{oid}", [_discounted(oid, None)]).status_code == 200
    other = hq.issue_licence("site-other", categories=["game"])
    assert post_orders(hq, other, "k-X", [{**_discounted("X1", None), "sku": "card-p"}]).status_code == 200
    resp = http.post(f"{hq.url}/v1/order-status", headers=auth(token), json={"order_ids": ["S2", "nope", "X1", "S1"]})
    assert resp.status_code == 200, resp.text
    got = resp.json()["results"]
    assert [r["order_id"] for r in got] == ["S2", "S1"]  # in the order asked; unknown and another site's left out
    assert all(r["status"] == "pending_payment" and r["payment"]["amount_cents"] == LIST for r in got)


@pytest.mark.parametrize("body", [
    {"order_ids": []}, {"order_ids": [f"o{i}" for i in range(201)]}, {"order_ids": ["a", "a"]},
    {"order_ids": ["bad id!"]}, {"order_ids": ["a"], "more": 1}, {"order_ids": "a"}, {},
])
def test_a_bad_status_request_is_refused(paying, body):
    hq, token, _ = paying
    resp = http.post(f"{hq.url}/v1/order-status", headers=auth(token), json=body)
    assert resp.status_code == 422, resp.text
    assert http.post(f"{hq.url}/v1/order-status", json={"order_ids": ["a"]}).status_code == 401
