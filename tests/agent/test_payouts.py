"""Payouts through the agent against the real HQ: the finance role's request out, HQ's decision and balance back.

The storefront writes the request to the site database under an id made at
the site; the agent takes it to HQ (never a call from the storefront), so a
resend answers the first request instead of making a second payout. HQ's
approval with its transfer reference, or its refusal, comes back to the page,
and the site's copy of the ledger then agrees with HQ's balance to the fen.
SQLite and PostgreSQL site databases.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from agent.hq_client import HQClient, HQError
from agent.settlement import SettlementSync
from hq.ledger import events, payouts as hq_payouts
from sitedb.tables import payout_requests, settlement_entries
from storefront import payouts as site_payouts

CREDIT = 50_000


def _ask(engine, yuan: str) -> str:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return site_payouts.request(conn, yuan, "admin:fin")


def _local(engine, request_id: str):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(payout_requests).where(payout_requests.c.id == request_id)).one()


def _terms(engine):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return site_payouts.terms(conn)


@pytest.fixture
def credited(hq, started, site):  # type: ignore[no-untyped-def]
    """The site has a balance at HQ, and the agent has read HQ's terms once (the page needs them)."""
    events.adjust(hq.service, "op", site.site_id, CREDIT, "opening credit for the test")
    started.settlement.run()
    return hq_payouts.balance(hq.service, site.site_id)


def test_a_request_reaches_hq_once_and_the_approval_comes_back(hq, started, engine, site, credited):
    assert _terms(engine) == {k: v for k, v in credited.items() if k != "site"}
    fee = credited["payout_fee_fen"]
    request_id = _ask(engine, "300")
    outcome = started.settlement.run()
    assert (outcome.payouts_sent, outcome.payouts_refused) == (1, 0)
    [held] = hq_payouts.list_payouts(hq.service, site.site_id)
    assert (held["request_id"], held["amount_fen"], held["status"]) == (request_id, 30_000, "requested")
    sent = _local(engine, request_id)
    assert (sent.send_state, sent.hq_id, sent.status, sent.fee_fen) == ("sent", held["id"], "requested", fee)
    assert _terms(engine)["available_fen"] == CREDIT - 30_000 - fee

    with engine.begin() as conn:  # HQ's answer was lost: the agent sends the same request again
        conn.execute(update(payout_requests).values(send_state="pending", hq_id=None, status=None))
    assert started.settlement.run().payouts_sent == 1
    assert len(hq_payouts.list_payouts(hq.service, site.site_id)) == 1  # one payout, not two
    assert _local(engine, request_id).hq_id == held["id"]

    hq_payouts.approve(hq.service, "op", held["id"], "BANK-2026-0042")
    started.settlement.run()
    approved = _local(engine, request_id)
    assert (approved.status, approved.transfer_ref) == ("approved", "BANK-2026-0042")
    assert approved.decided_at is not None
    at_hq = hq_payouts.balance(hq.service, site.site_id)
    terms = _terms(engine)
    assert terms["balance_fen"] == at_hq["balance_fen"] == CREDIT - 30_000 - fee
    with engine.connect() as conn:  # the site's copy of the ledger says the same, to the fen
        assert conn.scalar(select(func.sum(settlement_entries.c.net_fen))) == at_hq["balance_fen"]
        kinds = set(conn.scalars(select(settlement_entries.c.kind)))
    assert {"payout", "payout_fee"} <= kinds


def test_a_rejection_and_a_refusal_come_back_with_hqs_reason(hq, started, engine, site, credited):
    rejected = _ask(engine, "200")
    too_much = _ask(engine, "250")  # the site allowed it: HQ's balance shrank before it arrived
    events.adjust(hq.service, "op", site.site_id, -20_000, "chargeback")
    outcome = started.settlement.run()
    assert (outcome.payouts_sent, outcome.payouts_refused) == (1, 1)
    refused = _local(engine, too_much)
    assert refused.send_state == "refused" and "insufficient_balance" in refused.send_error and refused.hq_id is None
    [held] = hq_payouts.list_payouts(hq.service, site.site_id)
    hq_payouts.reject(hq.service, "op", held["id"], "银行账户信息缺失")
    started.settlement.run()
    row = _local(engine, rejected)
    assert (row.status, row.reason, row.transfer_ref) == ("rejected", "银行账户信息缺失", None)
    assert _terms(engine)["available_fen"] == CREDIT - 20_000  # a rejection frees the amount


def test_a_request_waits_while_hq_is_away_and_goes_when_it_is_back(hq, started, engine, site, credited):
    request_id = _ask(engine, "150")
    away = SettlementSync(engine, HQClient("http://127.0.0.1:9", started.settlement.client.token, timeout=1,
                                           connect_timeout=0.2), backoff_base=0.01, backoff_cap=0.02)
    with pytest.raises(HQError) as failed:
        away.run()
    assert failed.value.kind == "connect"
    waiting = _local(engine, request_id)
    assert (waiting.send_state, waiting.send_attempts) == ("pending", 1) and waiting.send_next_at is not None
    assert hq_payouts.list_payouts(hq.service, site.site_id) == []
    with engine.begin() as conn:  # the back-off has passed
        conn.execute(update(payout_requests).values(send_next_at=None))
    assert started.settlement.run().payouts_sent == 1
    assert [p["request_id"] for p in hq_payouts.list_payouts(hq.service, site.site_id)] == [request_id]
