"""Payouts: requested from the available balance (minimum and fee applied), approved with a transfer reference."""

from __future__ import annotations

from typing import Iterator

import pytest

from hq.errors import ApiError
from hq.ledger import accounts, events, payouts, rates
from hq.service import HQ
from tests.hq.ledger_support import HQ_PRICE, buy, entry_count, open_settlement_hq

FEE, MINIMUM = rates.DEFAULTS["payout_fee"], rates.DEFAULTS["min_payout"]


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_settlement_hq(tmp_path / "hq", db_url)
    events.adjust(service, "op", "site-a", 50_000, "opening credit for the test")
    yield service
    service.close()


def test_request_then_approve_posts_the_payout_and_its_fee(hq):
    asked = payouts.request(hq, "site-a", "w-1", 30_000)
    assert asked["status"] == "requested" and asked["fee_fen"] == FEE
    assert payouts.balance(hq, "site-a")["available_fen"] == 50_000 - 30_000 - FEE
    assert payouts.request(hq, "site-a", "w-1", 30_000)["id"] == asked["id"]  # the same request again
    approved = payouts.approve(hq, "op", asked["id"], "BANK-2026-0001")
    assert approved["status"] == "approved" and approved["transfer_ref"] == "BANK-2026-0001"
    state = payouts.balance(hq, "site-a")
    assert state["balance_fen"] == state["available_fen"] == 50_000 - 30_000 - FEE
    with hq.read() as conn:
        assert accounts.trial_balance(conn).balanced
        assert accounts.balances(conn)["hq:bank"] == -30_000
    with pytest.raises(ApiError, match="already approved"):
        payouts.approve(hq, "op", asked["id"], "BANK-2026-0002")
    assert entry_count(hq, "payout") == 1 and entry_count(hq, "payout_fee") == 1


@pytest.mark.parametrize("amount,code", [(MINIMUM - 1, "below_minimum"), (50_000 - FEE + 1, "insufficient_balance"),
                                         (0, "below_minimum")])
def test_refused_requests_change_nothing(hq, amount, code):
    with pytest.raises(ApiError) as caught:
        payouts.request(hq, "site-a", "w-1", amount)
    assert caught.value.code == code
    assert payouts.list_payouts(hq, "site-a") == []


def test_waiting_requests_hold_their_amount(hq):
    payouts.request(hq, "site-a", "w-1", 30_000)
    with pytest.raises(ApiError, match="exceed the available"):
        payouts.request(hq, "site-a", "w-2", 30_000)
    with pytest.raises(ApiError, match="another amount"):
        payouts.request(hq, "site-a", "w-1", 20_000)


def test_rejected_payout_posts_nothing_and_frees_the_amount(hq):
    asked = payouts.request(hq, "site-a", "w-1", 30_000)
    payouts.reject(hq, "op", asked["id"], "bank details missing")
    assert entry_count(hq, "payout") == 0
    assert payouts.balance(hq, "site-a")["available_fen"] == 50_000


def test_approval_refused_when_refunds_ate_the_balance(hq):
    result = buy(hq, "site-a", "o1", unit_price=20_000)
    asked = payouts.request(hq, "site-a", "w-1", 60_000)
    assert asked["amount_fen"] + FEE <= 50_000 + 20_000 - HQ_PRICE - 2400
    events.refund(hq, "op", result["hq_order_id"], "chargeback")
    with pytest.raises(ApiError, match="reject the payout"):
        payouts.approve(hq, "op", asked["id"], "BANK-1")


def test_minimum_and_fee_come_from_the_rates(hq):
    from datetime import timedelta

    from hq.clock import utcnow

    day = utcnow().date() + timedelta(days=1)
    rates.set_rate(hq, "op", "min_payout", 1, day)
    with pytest.raises(ApiError, match="minimum"):
        payouts.request(hq, "site-a", "w-1", MINIMUM - 1)  # tomorrow's rate is not today's


def test_bad_references_are_refused(hq):
    with pytest.raises(ApiError, match="request_id"):
        payouts.request(hq, "site-a", "bad id", 20_000)
    asked = payouts.request(hq, "site-a", "w-1", 20_000)
    with pytest.raises(ApiError, match="transfer_ref"):
        payouts.approve(hq, "op", asked["id"], "two words")
    with pytest.raises(ApiError, match="does not exist"):
        payouts.approve(hq, "op", 999, "BANK-1")



def test_the_same_request_sent_at_once_makes_one_payout(hq):
    """The agent may resend a request whose answer it lost while HQ still works on the first: one payout, same answer."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    start = Barrier(4)

    def send(request_id: str) -> dict:
        start.wait()
        return payouts.request(hq, "site-a", request_id, 20_000)

    for attempt in range(5):
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, [f"p-{attempt}"] * 4))
        assert len({a["id"] for a in answers}) == 1
        payouts.reject(hq, "op", answers[0]["id"], "next round")  # frees the amount for the next round
    assert len(payouts.list_payouts(hq, "site-a")) == 5
