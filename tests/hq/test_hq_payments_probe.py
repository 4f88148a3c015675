"""`kitctl hq payments test GATEWAY`: reach the gateway with the stored credentials, change nothing there.

epay answers "no such order" to a query only once the pid and key check out, so
a query for an order that cannot exist is the connection test; a refused key is
a failure (never "unpaid": the sweep must not expire payments on it).
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from hq.payments.contract import GatewayError
from hq.payments.epay import EpayGateway
from hq.payments.sandbox_epay import EpaySandbox, serving
from hq.testing import free_port
from kitctl.cli import run


@pytest.fixture
def box() -> Iterator[EpaySandbox]:
    with serving(EpaySandbox()) as sandbox:
        yield sandbox


def kit(hq_dir, *args: str) -> int:  # type: ignore[no-untyped-def]
    return run(["hq", "payments", *args, "--hq-dir", str(hq_dir)])


def _enable(tmp_path, hq_dir, api_url: str, pid: str, key: str) -> None:  # type: ignore[no-untyped-def]
    creds = tmp_path / "epay.json"
    creds.write_text(json.dumps({"api_url": api_url, "pid": pid, "key": key}))
    assert kit(hq_dir, "enable", "epay", "--credentials", str(creds)) == 0


def test_the_connection_test_passes_with_the_right_key_and_fails_with_a_wrong_one(tmp_path, capsys, box):
    hq_dir = tmp_path / "hq"
    pid, key = box.add_merchant()
    _enable(tmp_path, hq_dir, box.url, pid, key)
    capsys.readouterr()
    assert kit(hq_dir, "test", "epay") == 0
    out = capsys.readouterr().out
    assert "epay: ok" in out and "key accepted" in out and key not in out
    assert box.trades == {}  # nothing opened at the gateway
    _enable(tmp_path, hq_dir, box.url, pid, "not-the-key")
    capsys.readouterr()
    assert kit(hq_dir, "test", "epay") == 1
    out = capsys.readouterr().out
    assert "epay: failed" in out and "KEY" in out and "not-the-key" not in out
    _enable(tmp_path, hq_dir, f"http://127.0.0.1:{free_port('127.0.0.1')}/", pid, key)  # nobody listens
    capsys.readouterr()
    assert kit(hq_dir, "test", "epay") == 1
    assert "ConnectError" in capsys.readouterr().out
    import sqlite3

    with sqlite3.connect(hq_dir / "hq.sqlite3") as db:  # each test audited with its outcome, never the key
        audited = [json.loads(d) for (d,) in db.execute("SELECT detail FROM audit_log WHERE action = 'payments.test'")]
    assert [(d["gateway"], d["ok"]) for d in audited] == [("epay", True), ("epay", False), ("epay", False)]
    assert "ConnectError" in audited[2]["result"] and not any(k in str(audited) for k in (key, "not-the-key"))


@pytest.mark.parametrize("name", ["epay", "nope"])
def test_testing_a_gateway_not_configured_is_one_line_exit_2(tmp_path, capsys, name):
    assert kit(tmp_path / "hq", "test", name) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not configured" in err and err.count("\n") == 1


def test_a_refused_key_is_an_error_not_an_unpaid_order(box):
    pid, key = box.add_merchant()
    assert EpayGateway({"api_url": box.url, "pid": pid, "key": key}).query("k-none") is None  # really unknown
    with pytest.raises(GatewayError, match="KEY"):
        EpayGateway({"api_url": box.url, "pid": pid, "key": "wrong"}).query("k-none")
