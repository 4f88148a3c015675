"""The finance role's payout page: HQ's balance and terms, a request left for the agent, HQ's decisions shown."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select, update

from sitedb.engine import make_engine
from sitedb.tables import audit_log, payout_requests, site_state
from storefront.payouts import PayoutRefused, parse_yuan
from tests.storefront.http import form_token
from tests.storefront.support import seed
from tests.storefront.test_settlement_pages import _signed_in

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")
TERMS = {"balance_fen": 800_000, "pending_fen": 100_500, "available_fen": 699_500, "min_payout_fen": 10_000,
         "payout_fee_fen": 500}


def _terms(url: str, terms: dict[str, int] | None = TERMS) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(site_state).values(payout_terms=terms))
    engine.dispose()


def _requests(url: str) -> list:  # type: ignore[type-arg]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(payout_requests).order_by(payout_requests.c.requested_at)))
    finally:
        engine.dispose()


@pytest.mark.parametrize("text,fen", [("1500", 150_000), ("1500.5", 150_050), ("0.01", 1), ("¥1,500.50", 150_050)])
def test_amounts_in_yuan_become_integer_fen(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["", "abc", "-5", "1.234", "0", "0.00", "1e3", "１００", "12345678901"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(PayoutRefused, match="payout.err_amount"):
        parse_yuan(text)


def test_finance_sees_hqs_terms_and_requests_a_payout_in_yuan(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _terms(url)
    client = _signed_in(tmp_path, url)
    page = client.get("/admin/payouts").text
    assert "可提现余额" in page and "¥6,995.00" in page and "¥100.00" in page and "¥5.00" in page
    asked = client.post("/admin/payouts", data={"csrf": form_token(page), "amount": "1500.50"})
    assert asked.status_code == 200 and "已记录提现申请" in asked.text and "待发送至总部" in asked.text
    [row] = _requests(url)
    assert (row.amount_fen, row.send_state, row.requested_by, row.status) == (150_050, "pending", "admin:fin-finance", None)
    assert row.id.startswith("p-") and len(row.id) <= 64
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "payout_requested")).scalar() == \
            {"request": row.id, "amount_fen": 150_050}
    engine.dispose()


@pytest.mark.parametrize("amount,message", [
    ("12.345", "at most two decimals"), ("abc", "at most two decimals"), ("99.99", "below HQ's minimum payout"),
    ("6990.01", "exceed the available balance")])
def test_bad_requests_get_one_line_and_change_nothing(tmp_path, amount, message):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _terms(url)
    client = _signed_in(tmp_path, url, role="admin", lang="en")
    page = client.get("/admin/payouts").text
    refused = client.post("/admin/payouts", data={"csrf": form_token(page), "amount": amount})
    assert refused.status_code == 422 and 'id="e-amount"' in refused.text and message in html.unescape(refused.text)
    assert _requests(url) == []


def test_requests_not_yet_sent_hold_their_amount_and_fee(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _terms(url)
    client = _signed_in(tmp_path, url, lang="en")
    token = form_token(client.get("/admin/payouts").text)
    assert client.post("/admin/payouts", data={"csrf": token, "amount": "4000"}).status_code == 200
    second = client.post("/admin/payouts", data={"csrf": token, "amount": "2985.01"})  # 6995 - 4005 = 2990 left, 5 of it the fee
    assert second.status_code == 422 and "exceed the available balance" in second.text
    assert client.post("/admin/payouts", data={"csrf": token, "amount": "2985"}).status_code == 200
    assert len(_requests(url)) == 2


def test_no_request_before_hq_has_stated_its_terms(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client = _signed_in(tmp_path, url, lang="en")
    page = client.get("/admin/payouts").text
    assert "not here yet" in page and 'id="payout-form"' not in page
    refused = client.post("/admin/payouts", data={"csrf": form_token(page), "amount": "100"})
    assert refused.status_code == 422 and "try again shortly" in refused.text and _requests(url) == []


def test_hqs_decisions_show_with_the_transfer_reference_or_the_reason(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _terms(url)
    client = _signed_in(tmp_path, url)
    token = form_token(client.get("/admin/payouts").text)
    for amount in ("100", "200", "300", "400"):
        client.post("/admin/payouts", data={"csrf": token, "amount": amount})
    first, second, third, fourth = (r.id for r in _requests(url))
    engine = make_engine(url)
    t = payout_requests.c
    with engine.begin() as conn:
        conn.execute(update(payout_requests).where(t.id == first).values(
            send_state="sent", hq_id=11, status="approved", fee_fen=500, transfer_ref="BANK-2026-0001"))
        conn.execute(update(payout_requests).where(t.id == second).values(
            send_state="sent", hq_id=12, status="rejected", fee_fen=500, reason="银行账户信息缺失"))
        conn.execute(update(payout_requests).where(t.id == third).values(
            send_state="refused", send_error="HTTP 409 below_minimum: the minimum payout is 50000 fen"))
        conn.execute(update(payout_requests).where(t.id == fourth).values(send_state="sent", hq_id=14,
                                                                          status="requested", fee_fen=500))
    engine.dispose()
    page = client.get("/admin/payouts").text
    assert f'data-payout="{first}" data-state="approved"' in page and "BANK-2026-0001" in page and "已转账" in page
    assert f'data-payout="{second}" data-state="rejected"' in page and "银行账户信息缺失" in page
    assert f'data-payout="{third}" data-state="refused"' in page and "the minimum payout is 50000 fen" in page
    assert f'data-payout="{fourth}" data-state="requested"' in page and "待总部审核" in page


def test_the_operator_may_not_request_payouts(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _terms(url)
    client = _signed_in(tmp_path, url, role="operator")
    assert "/admin/payouts" not in client.get("/admin").text
    assert client.get("/admin/payouts").status_code == 403
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/payouts", data={"csrf": token, "amount": "100"}).status_code == 403
    assert _requests(url) == []
