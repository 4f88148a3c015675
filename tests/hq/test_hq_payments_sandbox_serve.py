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
