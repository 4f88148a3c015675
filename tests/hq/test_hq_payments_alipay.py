"""The Alipay gateway against the Alipay sandbox's own keys: what verifies and what is refused, and one paid order.

Unit tests talk to the sandbox in process (Starlette's test client is an
httpx client); the HQ-level test serves both HQ and the sandbox on loopback.
"""

from __future__ import annotations


import base64
import json
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from hq.metrics import metrics
from hq.payments import config, flow, refunds
from hq.payments.alipay import AlipayGateway
from hq.payments.contract import Forged, GatewayError, PaymentRequest
from hq.payments.sandbox_alipay import AlipaySandbox, Trade, serving
from hq.testing import running_hq
from tests.hq.helpers import auth, notifications_acknowledged, order, post_orders, wait_order_status

LOCAL = "http://127.0.0.1:9/"  # the sandbox in process: never dialled


@pytest.fixture
def box() -> AlipaySandbox:
    sandbox = AlipaySandbox(drop_notifications=True)
    sandbox.url = LOCAL
    return sandbox


def _gateway(box: AlipaySandbox, creds: dict[str, str]) -> AlipayGateway:
    return AlipayGateway(creds, client=TestClient(box.app(), base_url=LOCAL.rstrip("/")))


def _paid(box: AlipaySandbox, gw: AlipayGateway, out_trade_no: str = "kabc", cents: int = 9500) -> Trade:
    gw.create(PaymentRequest(out_trade_no, cents, "CNY", "game-100 x1", "http://hq/n", "http://hq/r"))
    trade = box.by_out_trade_no(gw.app_id, out_trade_no)
    box.pay(trade.trade_no)
    return trade


def test_precreate_gives_the_qr_and_the_wap_link_is_signed_for_the_sandbox(box):
    creds = box.add_app()
    gw = _gateway(box, creds)
    link = gw.create(PaymentRequest("kabc", 1234, "CNY", "game-100 x1", "http://hq/n", "http://hq/r"))
    assert link.qr_content.startswith(f"{LOCAL}qr/")
    query = {k: v[0] for k, v in parse_qs(urlsplit(link.pay_url).query).items()}
    assert query["method"] == "alipay.trade.wap.pay" and query["sign_type"] == "RSA2"
    assert json.loads(query["biz_content"])["total_amount"] == "12.34"  # exact yuan from fen
    client = TestClient(box.app(), base_url=LOCAL.rstrip("/"))
    cashier = client.get(link.pay_url)
    assert cashier.status_code == 200 and "¥12.34" in cashier.text  # the sandbox accepted HQ's signature
    tampered = link.pay_url.replace("12.34", "0.01")
    assert "isv.invalid-signature" in client.get(tampered).text


def test_a_notification_signed_by_the_sandbox_verifies_and_query_and_refund_work(box):
    gw = _gateway(box, box.add_app())
    trade = _paid(box, gw)
    notice = gw.verify(box.notification(trade))
    assert (notice.out_trade_no, notice.trade_no, notice.amount_cents, notice.currency, notice.paid) == \
        ("kabc", trade.trade_no, 9500, "CNY", True)
    assert gw.verify(box.notification(trade, trade_status="TRADE_FINISHED")).paid is True
    assert gw.verify(box.notification(trade, trade_status="WAIT_BUYER_PAY")).paid is False
    assert gw.query("kabc").paid is True and gw.query("knothere") is None
    assert gw.refund("kabc", 9500).accepted and box.trades[trade.trade_no].refunded == "95.00"
    assert gw.refund("kabc", 9500).accepted and box.trades[trade.trade_no].refunded == "95.00"  # a retry: same refund


@pytest.mark.parametrize("tamper", ["flip_sign", "amount_after_signing", "out_trade_no_after_signing", "no_sign",
                                    "sign_type", "garbage_sign"])
def test_a_changed_notification_is_refused(box, tamper):
    gw = _gateway(box, box.add_app())
    params = box.notification(_paid(box, gw))
    if tamper == "flip_sign":
        raw = bytearray(base64.b64decode(params["sign"]))
        raw[10] ^= 0x01
        params["sign"] = base64.b64encode(bytes(raw)).decode()
    elif tamper == "amount_after_signing":
        params["total_amount"] = "0.01"
    elif tamper == "out_trade_no_after_signing":
        params["out_trade_no"] = "kother"
    elif tamper == "no_sign":
        del params["sign"]
    elif tamper == "sign_type":
        params["sign_type"] = "RSA"
    else:
        params["sign"] = "not base64!"
    with pytest.raises(Forged):
        gw.verify(params)


def test_a_wrong_key_is_refused(box):
    creds = box.add_app()
    gw = _gateway(box, creds)
    trade = _paid(box, gw)
    other = AlipaySandbox()  # another "Alipay": its own key signs
    other.apps = box.apps
    with pytest.raises(Forged, match="signature"):
        gw.verify(other.notification(trade))


def test_a_notification_for_another_app_or_seller_is_refused(box):
    ours = box.add_app()
    gw = _gateway(box, ours)
    trade = _paid(box, gw)
    with pytest.raises(Forged, match="another merchant"):
        gw.verify(box.notification(trade, app_id="2021999999999999"))  # signed by Alipay, for another app
    with pytest.raises(Forged, match="another merchant"):
        gw.verify(box.notification(trade, seller_id="2088000000000001"))


def test_a_wrong_amount_verifies_as_that_amount_for_the_flow_to_hold(box):
    gw = _gateway(box, box.add_app())
    assert gw.verify(box.notification(_paid(box, gw), total_amount="94.99")).amount_cents == 9499
    with pytest.raises(Forged):
        gw.verify(box.notification(_paid(box, gw, "kdef"), total_amount="94.999"))  # not whole fen


def test_an_answer_not_signed_by_alipay_is_not_trusted(box):
    creds = box.add_app()
    gw = _gateway(box, creds)
    _paid(box, gw)
    impostor = AlipaySandbox(apps=box.apps, trades=box.trades)
    impostor.url = LOCAL
    gw._client = TestClient(impostor.app(), base_url=LOCAL.rstrip("/"))
    with pytest.raises(GatewayError, match="signature"):
        gw.query("kabc")


@pytest.mark.parametrize("change, message", [
    ({"app_id": ""}, "lack app_id"),
    ({"private_key": "not a key"}, "private_key does not load"),
    ({"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}, "public_key"),
    ({"gateway_url": "http://alipay.example/gateway.do"}, "HTTPS"),
])
def test_bad_credentials_are_named(box, change, message):
    with pytest.raises(ValueError, match=message):
        AlipayGateway({**box.add_app(), **change})


# -- HQ-level: order -> pay at the sandbox -> notification -> key released ---------------------

@pytest.fixture
def served() -> Iterator[AlipaySandbox]:
    with serving(AlipaySandbox(notify_delay=0.1)) as sandbox:
        yield sandbox


def test_an_order_paid_at_the_sandbox_is_delivered_forged_refused_wrong_amount_held(tmp_path, db_url, served):
    with running_hq(tmp_path, database_url=db_url, payment_check_seconds=3600) as hq:
        hq.seed_item("card-a", price_cents=9000)
        hq.seed_card_keys("card-a", 2)
        config.configure(hq.service, "tester", "alipay", served.add_app())
        token = hq.issue_licence("site-ali", categories=["game"])
        resp = post_orders(hq, token, "k-A1", [order("A1", sku="card-a", unit_price_cents=9500),
                                               order("A2", sku="card-a", unit_price_cents=9500)])
        payment, second = (r["payment"] for r in resp.json()["results"])
        assert payment["gateway"] == "alipay" and payment["amount_cents"] == 9500
        assert payment["qr"].startswith(served.url + "qr/")
        page = httpx.get(payment["qr"])  # the buyer scans the QR code
        assert page.status_code == 200 and "¥95.00" in page.text
        trade = served.trades[payment["qr"].rsplit("/", 1)[1]]
        forged = served.notification(trade, total_amount="0.01")
        forged["total_amount"] = "95.00"  # signed over 0.01
        before = metrics().payment_notices.labels("alipay", "forged")._value.get()
        assert httpx.post(f"{hq.url}/v1/payments/alipay/notify", data=forged).status_code == 403
        assert metrics().payment_notices.labels("alipay", "forged")._value.get() - before == 1
        httpx.post(f"{served.url}pay/{trade.trade_no}")  # the buyer pays; the sandbox notifies HQ
        done = wait_order_status(hq, token, "A1", "delivered")
        assert len(done["delivery"]["card_keys"]) == 1
        assert notifications_acknowledged(trade) == 1
        replay = httpx.post(f"{hq.url}/v1/payments/alipay/notify", data=served.notification(trade))
        assert replay.text == "success"
        assert httpx.get(f"{hq.url}/v1/orders/A1", headers=auth(token)).json()["delivery"] == done["delivery"]
        short = served.notification(served.trades[second["qr"].rsplit("/", 1)[1]], total_amount="94.00")
        assert httpx.post(f"{hq.url}/v1/payments/alipay/notify", data=short).text == "success"
        held = httpx.get(f"{hq.url}/v1/orders/A2", headers=auth(token)).json()
        assert held["status"] == "review" and held["delivery"] is None  # signed, but not the order's amount
        refunded = refunds.refund(hq.service, "tester", done["hq_order_id"], "buyer asked")  # through Alipay
        assert refunded["amount_cents"] == 9500 and trade.refunded == "95.00"


def _asked_while_a_writer_tries(hq: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every precreate HQ asks of Alipay from now on, with whether another writer, started at that moment on the
    rows an approval reserves, was still kept waiting 3 s later (True: the gateway was asked inside a transaction
    that holds them)."""
    import threading

    from sqlalchemy import update

    from hq.models import CardKey

    asked: list[tuple[str, bool]] = []
    real = AlipayGateway.create

    def create(self, request):  # type: ignore[no-untyped-def]
        def write() -> None:
            with hq.service.connection() as conn:
                conn.execute(update(CardKey).where(CardKey.sku == "card-a").values(serial=CardKey.serial))

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(3)
        asked.append((request.out_trade_no, writer.is_alive()))  # alive: kept waiting while Alipay answers
        return real(self, request)

    monkeypatch.setattr(AlipayGateway, "create", create)
    return asked


@contextmanager
def _hq_on_alipay(tmp_path: Any, db_url: str, served: AlipaySandbox, keys: int) -> Iterator[tuple[Any, str]]:
    """HQ with Alipay (the sandbox) enabled, `keys` keys of card-a on sale, and a site's licence token."""
    with running_hq(tmp_path, database_url=db_url, payment_check_seconds=3600) as hq:
        hq.seed_item("card-a", price_cents=9000)
        hq.seed_card_keys("card-a", keys)
        config.configure(hq.service, "tester", "alipay", served.add_app())
        yield hq, hq.issue_licence("site-ali", categories=["game"])


def _paid_and_delivered(hq: Any, served: AlipaySandbox, token: str, order_id: str, trade_no: str) -> None:
    trade = served.by_out_trade_no(next(iter(served.apps)), trade_no)
    httpx.post(f"{served.url}pay/{trade.trade_no}")
    assert len(wait_order_status(hq, token, order_id, "delivered")["delivery"]["card_keys"]) == 1


def test_a_batchs_links_are_asked_of_alipay_before_its_transaction_so_no_writer_waits(tmp_path, db_url, served,
                                                                                       monkeypatch):
    with _hq_on_alipay(tmp_path, db_url, served, keys=2) as (hq, token):
        asked = _asked_while_a_writer_tries(hq, monkeypatch)
        resp = post_orders(hq, token, "k-B", [order("B1", sku="card-a", unit_price_cents=9500),
                                              order("B2", sku="no-such-sku", unit_price_cents=9500)])
        paid, refused = resp.json()["results"]
        assert paid["status"] == "pending_payment" and refused["status"] == "rejected"
        assert asked == [(flow.out_trade_no("site-ali", "B1"), False)]  # once, for the approved order, unlocked
        trade = served.by_out_trade_no(next(iter(served.apps)), asked[0][0])
        assert paid["payment"]["qr"] == served.url + "qr/" + trade.trade_no  # the link made before is the one stored
        _paid_and_delivered(hq, served, token, "B1", asked[0][0])


def test_the_per_order_path_asks_alipay_before_its_transaction_so_no_writer_waits(tmp_path, db_url, served,
                                                                                   monkeypatch):
    with _hq_on_alipay(tmp_path, db_url, served, keys=2) as (hq, token):
        known = order("C1", sku="card-a", unit_price_cents=9500)
        assert post_orders(hq, token, "k-C1", [known]).json()["results"][0]["status"] == "pending_payment"
        asked = _asked_while_a_writer_tries(hq, monkeypatch)
        resp = post_orders(hq, token, "k-C2", [known, order("C2", sku="card-a", unit_price_cents=9500)])
        replayed, fresh = resp.json()["results"]  # a known order in the batch: the per-order path decides C2
        assert replayed["replayed"] and fresh["status"] == "pending_payment"
        assert asked == [(flow.out_trade_no("site-ali", "C2"), False)]  # once, for the new order, unlocked
        trade = served.by_out_trade_no(next(iter(served.apps)), asked[0][0])
        assert fresh["payment"]["qr"] == served.url + "qr/" + trade.trade_no
        _paid_and_delivered(hq, served, token, "C2", asked[0][0])


def test_a_review_approval_asks_alipay_before_its_transaction_so_no_writer_waits(tmp_path, db_url, served,
                                                                                  monkeypatch):
    from hq import reviews
    from tests.agent.helpers import OPEN_RULES

    with _hq_on_alipay(tmp_path, db_url, served, keys=1) as (hq, token):
        hq.set_rules({**OPEN_RULES, "limits": {**OPEN_RULES["limits"], "review_amount_cents": 10_000}})
        asked = _asked_while_a_writer_tries(hq, monkeypatch)
        held = post_orders(hq, token, "k-D1", [order("D1", sku="card-a", unit_price_cents=10_000)]).json()["results"][0]
        assert held["status"] == "review" and asked == []  # nothing to pay yet
        resolved = reviews.resolve(hq.service, "op", held["hq_order_id"], "approve")
        assert (resolved["decision"], resolved["status"]) == ("approve", "pending_payment")
        assert asked == [(flow.out_trade_no("site-ali", "D1"), False)]  # once, before the order was locked
        _paid_and_delivered(hq, served, token, "D1", asked[0][0])


def test_an_unreachable_gateway_answers_503_stores_nothing_and_the_same_batch_lands_later(tmp_path):
    with serving(AlipaySandbox()) as gone:
        creds = gone.add_app()
    port = int(creds["gateway_url"].split(":")[2].split("/")[0])
    with running_hq(tmp_path, payment_check_seconds=3600) as hq:
        hq.seed_item("card-a", price_cents=9000)
        hq.seed_card_keys("card-a", 1)
        config.configure(hq.service, "tester", "alipay", creds)
        token = hq.issue_licence("site-ali", categories=["game"])
        batch = [order("A9", sku="card-a", unit_price_cents=9500)]
        down = post_orders(hq, token, "k-A9", batch)
        assert down.status_code == 503 and down.json()["error"] == "payment_gateway_unavailable"
        assert "Traceback" not in down.text and creds["private_key"].splitlines()[1] not in down.text
        assert httpx.get(f"{hq.url}/v1/orders/A9", headers=auth(token)).status_code == 404  # nothing stored
        with serving(gone, port=port):  # the same gateway back on the same address
            again = post_orders(hq, token, "k-A9", batch)
            assert again.status_code == 200 and again.json()["results"][0]["status"] == "pending_payment"
