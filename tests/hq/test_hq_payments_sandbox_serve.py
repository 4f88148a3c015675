"""The epay sandbox as its own process (`python -m hq.payments.sandbox_serve`, the demo's container)."""

from __future__ import annotations

import json
import os
import stat

import httpx
import pytest

from hq.payments.contract import PaymentRequest
from hq.payments.epay import EpayGateway
from hq.payments.sandbox_common import serving
from hq.payments.sandbox_serve import main, sandbox_from_file


def test_the_sandbox_knows_the_merchant_of_the_file_and_takes_hqs_signed_pay_link(tmp_path):
    path = tmp_path / "merchant.json"
    path.write_text(json.dumps({"pid": "1001", "key": "k" * 32}))
    box = sandbox_from_file(path, notify_attempts=8)
    assert box.merchants == {"1001": "k" * 32} and box.notify_attempts == 8
    with serving(box, "epay sandbox") as served:
        link = EpayGateway({"api_url": served.url, "pid": "1001", "key": "k" * 32}).create(
            PaymentRequest("kabc", 9500, "CNY", "game x1", "http://hq/n", "http://hq/r"))
        assert "¥95.00" in httpx.get(link.pay_url).text
        wrong = EpayGateway({"api_url": served.url, "pid": "1001", "key": "x" * 32}).create(
            PaymentRequest("kabd", 9500, "CNY", "game x1", "http://hq/n", "http://hq/r"))
        assert httpx.get(wrong.pay_url).status_code == 400  # another key's signature


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"pid": "1001"}', '{"pid": "", "key": "k"}',
                                     '{"pid": 1001, "key": "k"}'])
def test_a_bad_merchant_file_is_one_line_exit_2(tmp_path, capsys, content):
    path = tmp_path / "merchant.json"
    path.write_text(content)
    assert main(["--merchant", str(path), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: merchant file merchant.json") and err.count("\n") == 1


def test_a_missing_merchant_file_is_one_line_exit_2(tmp_path, capsys):
    assert main(["--merchant", str(tmp_path / "nope.json"), "--port", "1"]) == 2
    assert capsys.readouterr().err == "error: merchant file nope.json: No such file or directory\n"


def test_the_demo_hands_both_ends_one_merchant_made_once_and_kept_private(tmp_path):
    from demo.payments import credentials, merchant_file
    from demo.stack import Demo

    demo = Demo(root=tmp_path, hq_container="kitctl-t-hq", pay_port=18610)
    made = credentials(demo)
    assert stat.S_IMODE(os.stat(merchant_file(demo)).st_mode) == 0o600
    assert credentials(demo) == made  # not made again on the next `make demo`
    assert made["api_url"] == "http://kitctl-t-hq-pay:8610/" and made["submit_url"] == "http://127.0.0.1:18610/"
    box = sandbox_from_file(merchant_file(demo), notify_attempts=1)
    assert box.merchants == {made["pid"]: made["key"]}
    EpayGateway(made)  # a configuration HQ takes


def _restored_and_served(kind, tmp_path):  # type: ignore[no-untyped-def]
    """Credentials HQ would hold from a sandbox, and that sandbox made again from its state file by
    sandbox_from_state and served on the same address (as the container runs it)."""
    from contextlib import ExitStack

    from hq.payments.sandbox_serve import sandbox_from_state

    with serving(kind(), f"{kind.__name__} made here") as made:
        creds = made.add_app() if hasattr(made, "add_app") else made.add_merchant()
        port = int(made.url.rsplit(":", 1)[1].strip("/"))
        path = tmp_path / "state.json"
        path.write_text(json.dumps(made.state()))
    box = sandbox_from_state(path, made.url, notify_attempts=1)
    stack = ExitStack()
    stack.enter_context(serving(box, kind.__name__, port=port))
    return creds, box, stack


def test_an_alipay_sandbox_from_its_state_file_takes_hqs_calls_and_its_notifications_verify_at_hq(tmp_path):
    from hq.payments.alipay import AlipayGateway
    from hq.payments.sandbox_alipay import AlipaySandbox

    creds, box, stack = _restored_and_served(AlipaySandbox, tmp_path)
    with stack:
        box.drop_notifications = True
        gw = AlipayGateway(creds)
        link = gw.create(PaymentRequest("kstate", 9500, "CNY", "game x1", "http://hq/n", "http://hq/r"))
        trade = box.by_out_trade_no(creds["app_id"], "kstate")  # the app HQ signs as is known to it
        assert link.qr_content == f"{box.url}qr/{trade.trade_no}"
        box.pay(trade.trade_no)
        notice = gw.verify(box.notification(trade))  # signed with the key HQ was given the public half of
        assert (notice.out_trade_no, notice.amount_cents, notice.paid) == ("kstate", 9500, True)


def test_a_wechat_sandbox_from_its_state_file_takes_hqs_calls_and_its_notifications_verify_at_hq(tmp_path):
    from hq.payments.contract import Notification
    from hq.payments.sandbox_wechat import WechatSandbox
    from hq.payments.wechat import WechatGateway

    creds, box, stack = _restored_and_served(WechatSandbox, tmp_path)
    with stack:
        box.drop_notifications = True
        gw = WechatGateway(creds)
        link = gw.create(PaymentRequest("kstate", 9500, "CNY", "game x1", "http://hq/n", "http://hq/r"))
        trade = box.by_out_trade_no(creds["mchid"], "kstate")
        assert link.qr_content == f"{box.url}pay/{trade.transaction_id}"
        box.pay(trade.transaction_id)
        headers, body = box.notification(trade)
        notice = gw.verify(Notification({}, headers, body))  # the platform certificate HQ holds, the APIv3 key
        assert (notice.out_trade_no, notice.amount_cents, notice.paid) == ("kstate", 9500, True)


@pytest.mark.parametrize("content", ["not json", "[]", '{"gateway": "epay"}', '{"gateway": "alipay"}',
                                     '{"gateway": "wechat", "platform_key": "x"}'])
def test_a_bad_state_file_is_one_line_exit_2(tmp_path, capsys, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    assert main(["--state", str(path), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: state file state.json") and err.count("\n") == 1
