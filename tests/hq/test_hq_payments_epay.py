"""The 易支付 (epay) gateway plugin against the sandbox's own signatures: what verifies and what is refused."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from hq.payments.contract import Forged, PaymentRequest, cents, yuan
from hq.payments.epay import EpayGateway, sign
from hq.payments.sandbox_epay import EpaySandbox, Trade, sandbox_sign


def _trade(pid: str, money: str = "95.00") -> Trade:
    return Trade(trade_no="S1", pid=pid, out_trade_no="kabc", pay_type="alipay", name="game-100 x1", money=money,
                 notify_url="http://hq/notify", return_url="http://hq/return")


@pytest.fixture
def sandbox() -> EpaySandbox:
    return EpaySandbox()


def _gateway(pid: str, key: str) -> EpayGateway:
    return EpayGateway({"api_url": "http://sandbox.invalid/", "pid": pid, "key": key})


def test_signature_is_md5_of_the_sorted_non_empty_fields_and_the_key():
    fields = {"b": "2", "a": "1", "empty": "", "sign": "x", "sign_type": "MD5", "name": "点卡"}
    expected = hashlib.md5("a=1&b=2&name=点卡KEY".encode()).hexdigest()
    assert sign(fields, "KEY") == expected == sandbox_sign(fields, "KEY")


def test_a_notification_signed_by_the_sandbox_verifies(sandbox):
    pid, key = sandbox.add_merchant()
    notice = _gateway(pid, key).verify(sandbox.notification(_trade(pid)))
    assert (notice.out_trade_no, notice.trade_no, notice.amount_cents, notice.currency, notice.paid) == \
        ("kabc", "S1", 9500, "CNY", True)


def test_an_unfinished_trade_status_is_not_paid(sandbox):
    pid, key = sandbox.add_merchant()
    assert _gateway(pid, key).verify(sandbox.notification(_trade(pid), trade_status="WAIT_BUYER_PAY")).paid is False


@pytest.mark.parametrize("tamper", ["flip_sign", "money_after_signing", "out_trade_no_after_signing", "no_sign",
                                    "sign_type"])
def test_a_changed_notification_is_refused(sandbox, tamper):
    pid, key = sandbox.add_merchant()
    params = sandbox.notification(_trade(pid))
    if tamper == "flip_sign":
        params["sign"] = params["sign"][:-1] + ("0" if params["sign"][-1] != "0" else "1")
    elif tamper == "money_after_signing":
        params["money"] = "0.01"
    elif tamper == "out_trade_no_after_signing":
        params["out_trade_no"] = "kother"
    elif tamper == "no_sign":
        del params["sign"]
    else:
        params["sign_type"] = "RSA"
    with pytest.raises(Forged):
        _gateway(pid, key).verify(params)


def test_a_wrong_key_is_refused(sandbox):
    pid, _ = sandbox.add_merchant()
    with pytest.raises(Forged, match="signature"):
        _gateway(pid, "0" * 32).verify(sandbox.notification(_trade(pid)))


def test_a_notification_for_another_merchant_is_refused(sandbox):
    ours, key = sandbox.add_merchant("1001")
    sandbox.merchants["2002"] = key  # even signed with the same key, another pid is not ours
    with pytest.raises(Forged, match="another merchant"):
        _gateway(ours, key).verify(sandbox.notification(_trade("2002")))
    other, other_key = sandbox.add_merchant("3003")
    with pytest.raises(Forged):
        _gateway(ours, key).verify(sandbox.notification(_trade(other)))


def test_the_pay_link_carries_exactly_the_protocol_fields_signed():
    gw = _gateway("1001", "K" * 32)
    link = gw.create(PaymentRequest("kabc", 9500, "CNY", "game-100 x1", "http://hq/n", "http://hq/r"))
    query = {k: v[0] for k, v in parse_qs(urlsplit(link.pay_url).query).items()}
    assert urlsplit(link.pay_url).path == "/submit.php" and link.qr_content == link.pay_url
    assert set(query) == {"pid", "out_trade_no", "notify_url", "return_url", "name", "money", "sign", "sign_type"}
    assert query["money"] == "95.00" and query["sign_type"] == "MD5"
    assert query["sign"] == sandbox_sign(query, "K" * 32)


@pytest.mark.parametrize("text", ["12.345", "-1.00", "NaN", "abc", "Infinity", ""])
def test_amounts_that_are_not_whole_fen_are_refused(text):
    with pytest.raises(Forged):
        cents(text)


def test_amounts_round_trip_in_fen():
    assert [yuan(c) for c in (0, 1, 99, 100, 123456)] == ["0.00", "0.01", "0.99", "1.00", "1234.56"]
    assert [cents(yuan(c)) for c in (0, 1, 99, 100, 123456)] == [0, 1, 99, 100, 123456]


def test_missing_credentials_are_named():
    with pytest.raises(ValueError, match="pid, key"):
        EpayGateway({"api_url": "http://x/"})


def test_the_pay_link_goes_to_submit_url_while_the_api_stays_at_api_url(sandbox):
    """A cashier elsewhere than the API (the demo's sandbox: by name for HQ, on a loopback port for payers)."""
    gw = EpayGateway({"api_url": "http://pay-sandbox:8610", "submit_url": "http://127.0.0.1:18610", "pid": "1001",
                      "key": "K" * 32})
    link = gw.create(PaymentRequest("kabc", 9500, "CNY", "game-100 x1", "http://hq/n", "http://hq/r"))
    assert link.pay_url.startswith("http://127.0.0.1:18610/submit.php?") and link.qr_content == link.pay_url
    assert gw.api_url == "http://pay-sandbox:8610/"
    assert _gateway("1001", "K" * 32).create(PaymentRequest("kabc", 9500, "CNY", "x", "http://hq/n", "http://hq/r")) \
        .pay_url.startswith("http://sandbox.invalid/submit.php?")  # without submit_url: where the API is
