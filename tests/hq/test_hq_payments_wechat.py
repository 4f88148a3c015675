"""The WeChat Pay API v3 Native gateway (wechatpayv3) against the sandbox's platform key: what verifies, what is refused.

The SDK speaks HTTP through requests, so the sandbox is served on loopback for
these tests too; the SDK's own request signing, answer verification and
notification decryption run against it.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Iterator

import httpx
import pytest

from hq.metrics import metrics
from hq.payments import config, refunds
from hq.payments.contract import Forged, GatewayError, Notification, PaymentRequest
from hq.payments.sandbox_wechat import Trade, WechatSandbox, serving
from hq.payments.wechat import WechatGateway
from hq.testing import running_hq
from tests.hq.helpers import auth, notifications_acknowledged, order, post_orders, wait_order_status


@pytest.fixture(scope="module")
def box() -> Iterator[WechatSandbox]:
    with serving(WechatSandbox(drop_notifications=True)) as sandbox:
        yield sandbox


_counter = iter(range(10 ** 6))


def _paid(box: WechatSandbox, gw: WechatGateway, cents: int = 9500) -> Trade:
    out_trade_no = f"k{next(_counter):031d}"
    link = gw.create(PaymentRequest(out_trade_no, cents, "CNY", "game-100 x1", "http://hq/n", "http://hq/r"))
    trade = box.by_out_trade_no(gw.mchid, out_trade_no)
    assert link.qr_content == f"{box.url}pay/{trade.transaction_id}" and trade.total == cents
    box.pay(trade.transaction_id)
    return trade


def _verify(gw: WechatGateway, headers: dict[str, str], body: bytes) -> Any:
    return gw.verify(Notification({}, headers, body))


def test_create_query_and_refund_run_the_sdks_signatures_against_the_sandbox(box):
    gw = WechatGateway(box.add_merchant())
    out_trade_no = "kunpaid000000000000000000000001"
    gw.create(PaymentRequest(out_trade_no, 1234, "CNY", "game-100 x1", "http://hq/n", "http://hq/r"))
    assert box.by_out_trade_no(gw.mchid, out_trade_no).total == 1234  # fen as an integer, never a float
    unpaid = gw.query(out_trade_no)
    assert (unpaid.paid, unpaid.amount_cents) == (False, 1234)
    assert gw.query("knothere") is None
    assert not gw.refund(out_trade_no, 1234).accepted  # nothing paid yet
    trade = _paid(box, gw)
    paid = gw.query(trade.out_trade_no)
    assert (paid.paid, paid.trade_no, paid.amount_cents, paid.currency) == (True, trade.transaction_id, 9500, "CNY")
    assert gw.refund(trade.out_trade_no, 9500).accepted and trade.refunded == 9500


def test_a_weixin_code_url_is_the_qr_and_the_pay_link_falls_back_to_hqs_return_page(box):
    gw = WechatGateway(box.add_merchant())
    box.real_code_url = True
    try:
        link = gw.create(PaymentRequest("kweixin00000000000000000000000001", 100, "CNY", "x", "http://hq/n",
                                        "http://hq/v1/payments/return"))
    finally:
        box.real_code_url = False
    assert link.qr_content.startswith("weixin://wxpay/bizpayurl?pr=")
    assert link.pay_url == "http://hq/v1/payments/return"  # the shop only takes http(s) links


def test_a_notification_signed_and_encrypted_by_the_sandbox_verifies(box):
    gw = WechatGateway(box.add_merchant())
    trade = _paid(box, gw)
    notice = _verify(gw, *box.notification(trade))
    assert (notice.out_trade_no, notice.trade_no, notice.amount_cents, notice.currency, notice.paid) == \
        (trade.out_trade_no, trade.transaction_id, 9500, "CNY", True)
    assert _verify(gw, *box.notification(trade, trade_state="CLOSED")).paid is False


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[7] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("tamper", ["flip_signature", "flip_body_byte", "flip_ciphertext", "other_nonce_header",
                                    "old_timestamp", "no_signature_type", "unknown_serial", "no_body"])
def test_a_changed_notification_is_refused(box, tamper):
    gw = WechatGateway(box.add_merchant())
    trade = _paid(box, gw)
    if tamper == "old_timestamp":  # signed correctly, but long ago: a replay from outside the window
        headers, body = box.notification(trade, headers={"Wechatpay-Timestamp": str(int(time.time()) - 3600)})
    else:
        headers, body = box.notification(trade)
    if tamper == "flip_signature":
        headers["Wechatpay-Signature"] = _flip(headers["Wechatpay-Signature"])
    elif tamper == "flip_body_byte":
        body = body.replace(b'"summary"', b'"summarx"')
    elif tamper == "flip_ciphertext":
        envelope = json.loads(body)
        envelope["resource"]["ciphertext"] = _flip(envelope["resource"]["ciphertext"])
        headers, body = _resigned(box, envelope)  # a valid signature over a broken ciphertext
    elif tamper == "other_nonce_header":
        headers["Wechatpay-Nonce"] = "0" * 32
    elif tamper == "no_signature_type":
        del headers["Wechatpay-Signature-Type"]
    elif tamper == "unknown_serial":
        headers["Wechatpay-Serial"] = "ZZZ-not-hex"
    elif tamper == "no_body":
        body = b""
    with pytest.raises(Forged):
        _verify(gw, headers, body)


def _resigned(box: WechatSandbox, envelope: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    body = json.dumps(envelope)
    return box.signed_headers(body), body.encode()


def test_a_notification_naming_another_platform_key_is_refused_without_fetching_certificates(box):
    gw = WechatGateway(box.add_merchant())
    trade = _paid(box, gw)

    def fetch() -> None:
        raise AssertionError("the SDK was made to fetch /v3/certificates")

    gw._pay._core._update_certificates = fetch
    with pytest.raises(Forged, match="platform key"):
        _verify(gw, *box.notification(trade, headers={"Wechatpay-Serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"}))


def test_a_wrong_platform_key_or_apiv3_key_is_refused(box):
    creds = box.add_merchant()
    gw = WechatGateway(creds)
    trade = _paid(box, gw)
    with serving(WechatSandbox()) as impostor:  # another platform key signs, same serial claimed
        impostor.merchants = box.merchants
        headers, body = impostor.notification(trade, headers={"Wechatpay-Serial": box.platform_serial})
    with pytest.raises(Forged):
        _verify(gw, headers, body)
    with pytest.raises(Forged):  # signed by the platform, but the resource is sealed with another APIv3 key
        _verify(gw, *box.notification(trade, apiv3_key="x" * 32))


def test_a_notification_for_another_merchant_is_refused(box):
    ours = WechatGateway(box.add_merchant())
    trade = _paid(box, ours)
    with pytest.raises(Forged, match="another merchant"):  # sealed with our APIv3 key, for another mchid
        _verify(ours, *box.notification(trade, mchid="1900009999"))
    with pytest.raises(Forged, match="another merchant"):
        _verify(ours, *box.notification(trade, appid="wx0000000000000000"))
    theirs = WechatGateway(box.add_merchant())
    with pytest.raises(Forged):  # another merchant's own notification: its APIv3 key, not ours
        _verify(ours, *box.notification(_paid(box, theirs)))


def test_an_amount_that_is_not_whole_fen_is_refused_and_another_amount_verifies_as_itself(box):
    gw = WechatGateway(box.add_merchant())
    trade = _paid(box, gw)
    assert _verify(gw, *box.notification(trade, amount={"total": 9499, "currency": "CNY"})).amount_cents == 9499
    for bad in (95.0, "9500", True, -1):
        with pytest.raises(Forged, match="whole fen"):
            _verify(gw, *box.notification(trade, amount={"total": bad, "currency": "CNY"}))


def test_an_answer_not_signed_by_the_platform_is_not_trusted(box):
    creds = box.add_merchant()
    with serving(WechatSandbox()) as impostor:
        impostor.merchants = box.merchants
        gw = WechatGateway({**creds, "gateway_url": impostor.url.rstrip("/")})
        with pytest.raises(GatewayError):
            gw.create(PaymentRequest("kimpostor", 100, "CNY", "x", "http://hq/n", "http://hq/r"))


@pytest.mark.parametrize("change, message", [
    ({"mchid": ""}, "lack mchid"),
    ({"apiv3_key": "short"}, "32-character"),
    ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "private_key"),
    ({"public_key": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}, "certificate"),
    ({"gateway_url": "http://wechat.example"}, "HTTPS"),
])
def test_bad_credentials_are_named(box, change, message):
    with pytest.raises(ValueError, match=message):
        WechatGateway({**box.add_merchant(), **change})


# -- HQ-level: order -> pay at the sandbox -> notification -> key released ---------------------

def test_an_order_paid_at_the_sandbox_is_delivered_and_a_wrong_amount_is_held(tmp_path, db_url):
    with serving(WechatSandbox(notify_delay=0.1)) as box, \
            running_hq(tmp_path, database_url=db_url, payment_check_seconds=3600) as hq:
        hq.seed_item("card-w", price_cents=9000)
        hq.seed_card_keys("card-w", 2)
        config.configure(hq.service, "tester", "wechat", box.add_merchant())
        token = hq.issue_licence("site-wx", categories=["game"])
        resp = post_orders(hq, token, "k-W", [order("W1", sku="card-w", unit_price_cents=9500),
                                              order("W2", sku="card-w", unit_price_cents=9500)])
        first, second = (r["payment"] for r in resp.json()["results"])
        assert first["gateway"] == "wechat" and first["qr"].startswith(box.url + "pay/")
        forged_before = metrics().payment_notices.labels("wechat", "forged")._value.get()
        trade = box.trades[first["qr"].rsplit("/", 1)[1]]
        headers, body = box.notification(trade)
        headers["Wechatpay-Signature"] = _flip(headers["Wechatpay-Signature"])
        assert httpx.post(f"{hq.url}/v1/payments/wechat/notify", content=body, headers=headers).status_code == 403
        assert metrics().payment_notices.labels("wechat", "forged")._value.get() - forged_before == 1
        padded = {**json.loads(box.notification(trade)[1]), "padding": "x" * 70_000}  # signed, valid, too large
        huge_headers, huge_body = _resigned(box, padded)
        huge = httpx.post(f"{hq.url}/v1/payments/wechat/notify", content=huge_body, headers=huge_headers)
        assert huge.status_code == 403  # larger than any notification: not even read as one
        page = httpx.get(first["qr"])  # the buyer scans the QR code
        assert page.status_code == 200 and "¥95.00" in page.text
        httpx.post(first["qr"])  # pays; the sandbox notifies HQ
        done = wait_order_status(hq, token, "W1", "delivered")
        assert len(done["delivery"]["card_keys"]) == 1
        assert notifications_acknowledged(trade) == 1
        duplicates = metrics().payment_notices.labels("wechat", "duplicate")._value.get()
        headers, body = box.notification(trade)
        for _ in range(2):  # the same signed notification again, twice: answered, changes nothing
            assert httpx.post(f"{hq.url}/v1/payments/wechat/notify", content=body, headers=headers).status_code == 200
        assert metrics().payment_notices.labels("wechat", "duplicate")._value.get() - duplicates == 2
        assert wait_order_status(hq, token, "W1", "delivered")["delivery"] == done["delivery"]
        other = box.trades[second["qr"].rsplit("/", 1)[1]]
        other.trade_state = "SUCCESS"
        headers, body = box.notification(other, amount={"total": 9400, "currency": "CNY"})
        assert httpx.post(f"{hq.url}/v1/payments/wechat/notify", content=body, headers=headers).status_code == 200
        held = wait_order_status(hq, token, "W2", "review")
        assert held["delivery"] is None
        refunded = refunds.refund(hq.service, "tester", done["hq_order_id"], "buyer asked")  # through WeChat Pay
        assert refunded["amount_cents"] == 9500 and trade.refunded == 9500 and trade.trade_state == "REFUND"
