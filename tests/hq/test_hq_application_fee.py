"""The base fee paid by the applicant through HQ's gateway (the epay sandbox), on SQLite and PostgreSQL: the
verified notification moves the application to base_fee_paid; a forged one, a wrong amount or a replay
moves nothing; the operator's recording stays the audited fallback."""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select

from hq.payments import application_fee
from hq.models import ApplicationPayment, AuditEvent
from hq.payments import config, flow
from hq.payments.sandbox_epay import EpaySandbox, serving
from hq.testing import RunningHQ, running_hq
from tests.hq.application_support import application


@pytest.fixture
def sandbox() -> Iterator[EpaySandbox]:
    with serving(EpaySandbox(notify_delay=0.1)) as box:
        yield box


@pytest.fixture
def signed(tmp_path, db_url, sandbox) -> Iterator[tuple[RunningHQ, EpaySandbox, str]]:  # type: ignore[no-untyped-def]
    """A served HQ taking payments through the sandbox, and an application whose contract is signed."""
    with running_hq(tmp_path, database_url=db_url, registry_url=None, payment_check_seconds=3600) as hq:
        hq.seed_item("game-100", category="game")
        pid, key = sandbox.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": sandbox.url, "pid": pid, "key": key})
        yield hq, sandbox, pid


def _applied(hq: RunningHQ) -> tuple[str, str]:
    made = httpx.post(f"{hq.url}/v1/applications", json=application(), timeout=30).json()
    return made["number"], made["secret"]


def _decide(hq: RunningHQ, number: str, to: str) -> httpx.Response:
    return httpx.post(f"{hq.url}/v1/admin/applications/{number}/decide", headers=hq.admin_headers(),
                      json={"to": to, "why": "ok"}, timeout=30)


def _stage(hq: RunningHQ, number: str, secret: str) -> str:
    return httpx.get(f"{hq.url}/v1/applications/{number}", headers={"X-Application-Secret": secret}).json()["stage"]


def _pay(hq: RunningHQ, number: str, secret: str) -> httpx.Response:
    return httpx.post(f"{hq.url}/v1/applications/{number}/pay", headers={"X-Application-Secret": secret}, timeout=30)


def _wait_stage(hq: RunningHQ, number: str, secret: str, stage: str) -> None:
    deadline = time.monotonic() + 15
    while _stage(hq, number, secret) != stage:
        assert time.monotonic() < deadline, f"still {_stage(hq, number, secret)}"
        time.sleep(0.1)


def test_the_gateways_notification_moves_the_application_to_base_fee_paid(signed) -> None:  # type: ignore[no-untyped-def]
    hq, sandbox, pid = signed
    number, secret = _applied(hq)
    assert _pay(hq, number, secret).json()["error"] == "wrong_stage"  # before the contract: nothing to pay
    assert _decide(hq, number, "contract_signed").status_code == 200
    assert _pay(hq, number, "x" * 32).status_code == 404  # a forged secret
    for lang, words in (("en", "Pay the base fee online"), ("zh-CN", "在线支付基础服务费")):
        page = httpx.post(f"{hq.url}/apply/status", params={"lang": lang}, data={"n": number, "s": secret})
        assert 'id="pay"' in page.text and words in page.text
    cashier = httpx.post(f"{hq.url}/apply/pay", data={"n": number, "s": secret})
    assert cashier.status_code == 303 and cashier.headers["location"].startswith(sandbox.url)
    assert httpx.post(f"{hq.url}/apply/pay", data={"n": number, "s": "y" * 32}).status_code == 404
    opened = _pay(hq, number, secret)
    assert opened.status_code == 200, opened.text
    link = opened.json()
    assert link["amount_cents"] > 0 and link["currency"] == "CNY" and link["status"] == "pending"
    assert _pay(hq, number, secret).json() == link  # asked again: the same payment
    assert httpx.get(link["pay_url"], timeout=30).status_code == 200  # the applicant opens the cashier
    trade = sandbox.by_out_trade_no(pid, application_fee.out_trade_no(int(number[2:])))
    assert trade is not None and trade.money == f"{link['amount_cents'] / 100:.2f}"

    forged = sandbox.notification(trade)
    forged["sign"] = "0" * 32
    assert httpx.get(f"{hq.url}/v1/payments/epay/notify", params=forged).status_code == 403
    assert _stage(hq, number, secret) == "contract_signed"

    sandbox.pay(trade.trade_no)
    _wait_stage(hq, number, secret, "base_fee_paid")
    replay = httpx.get(f"{hq.url}/v1/payments/epay/notify", params=sandbox.notification(trade))
    assert replay.status_code == 200 and _stage(hq, number, secret) == "base_fee_paid"  # a replay: nothing more
    page = httpx.post(f"{hq.url}/apply/status", params={"lang": "en"}, data={"n": number, "s": secret}).text
    assert "Payment gateway" in page and 'id="pay"' not in page
    with hq.service.session() as s:
        paid = s.scalar(select(ApplicationPayment))
        assert (paid.status, paid.trade_no) == ("paid", trade.trade_no)
        actions = [a.action for a in s.scalars(select(AuditEvent).where(AuditEvent.action.like("application.%")))]
    assert actions.count("application.base_fee_paid") == 1
    assert _decide(hq, number, "licence_issued").status_code == 200  # the next stage goes on as before


def test_a_wrong_amount_is_held_and_the_operator_records_the_fee(signed) -> None:  # type: ignore[no-untyped-def]
    hq, sandbox, pid = signed
    number, secret = _applied(hq)
    _decide(hq, number, "contract_signed")
    assert httpx.get(_pay(hq, number, secret).json()["pay_url"], timeout=30).status_code == 200
    trade = sandbox.by_out_trade_no(pid, application_fee.out_trade_no(int(number[2:])))
    sandbox.pay(trade.trade_no, fault="wrong_amount")
    deadline = time.monotonic() + 15
    while True:
        with hq.service.session() as s:
            if s.scalar(select(ApplicationPayment.status)) == "held":
                break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert _stage(hq, number, secret) == "contract_signed"  # money that does not fit moves nothing
    assert _decide(hq, number, "base_fee_paid").status_code == 200  # the operator's fallback
    with hq.service.session() as s:
        fallback = s.scalars(select(AuditEvent).where(AuditEvent.action == "application.base_fee_paid")).all()
        assert [a.operator for a in fallback] == ["tester"] and s.scalars(
            select(AuditEvent).where(AuditEvent.action == "application.fee_held")).first() is not None


def test_the_prefixes_keep_fees_and_orders_apart() -> None:
    assert application_fee.PREFIX == flow.FEE_PREFIX
    assert not flow.out_trade_no("site", "order").startswith(flow.FEE_PREFIX)
    assert application_fee.owns(application_fee.out_trade_no(1))
