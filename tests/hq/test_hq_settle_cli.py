"""`kitctl hq settle …`: a thin shell over hq.ledger; one-line errors with exit code 2, nothing changed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from hq.ledger import events
from kitctl.cli import run
from tests.hq.ledger_support import open_settlement_hq

PAST = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


@pytest.fixture
def hq_dir(tmp_path):
    path = tmp_path / "hq"
    service = open_settlement_hq(path, None)
    with service.connection() as conn:
        events.order_paid(conn, [events.PaidOrder("site-a", "hq_1", "o1", 2, 50_000, 4000, "game")], at=PAST)
    service.close()
    return path


def kit(hq_dir, *args: str) -> int:
    return run(["hq", "settle", *args, "--hq-dir", str(hq_dir)])


def test_issue_export_resolve_and_payout_from_the_cli(hq_dir, capsys, tmp_path):
    net = 2 * (50_000 - 4000) - 12_000
    assert kit(hq_dir, "issue", "site-a", "--day", "2026-10-01", "--json") == 0
    issued = json.loads(capsys.readouterr().out)[0]
    assert issued["totals"]["closing"] == net
    assert kit(hq_dir, "issue", "site-a", "--day", "2026-10-31") == 0
    assert "800.00" in capsys.readouterr().out  # the same statement, its closing shown in yuan
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert kit(hq_dir, "export", str(issued["id"]), "-o", str(first)) == 0
    assert kit(hq_dir, "export", str(issued["id"]), "-o", str(second)) == 0
    assert first.read_bytes() == second.read_bytes() and b"hq_1" in first.read_bytes()
    assert kit(hq_dir, "list", "--site", "site-a", "--json") == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [issued["id"]]
    assert kit(hq_dir, "adjust", "site-a", "--fen", "-500", "--reason", "late chargeback") == 0
    capsys.readouterr()
    assert kit(hq_dir, "balance", "site-a", "--json") == 0
    assert json.loads(capsys.readouterr().out)["balance_fen"] == net - 500
    assert kit(hq_dir, "show", str(issued["id"])) == 0
    assert "800.00" in capsys.readouterr().out
    assert kit(hq_dir, "check") == 0
    assert "balanced" in capsys.readouterr().out


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_export_pdf_writes_the_same_pdf_every_time(hq_dir, capsys, tmp_path):
    from tests.hq.test_hq_statement_pdf import text_of

    assert kit(hq_dir, "issue", "site-a", "--day", "2026-10-01", "--json") == 0
    issued = json.loads(capsys.readouterr().out)[0]
    first, second = tmp_path / "a.pdf", tmp_path / "b.pdf"
    assert kit(hq_dir, "export", str(issued["id"]), "--pdf", "-o", str(first)) == 0
    assert kit(hq_dir, "export", str(issued["id"]), "--pdf", "-o", str(second)) == 0
    assert first.read_bytes() == second.read_bytes()
    assert "800.00" in text_of(first.read_bytes()) and "o1" in text_of(first.read_bytes())
    assert kit(hq_dir, "export", "9", "--pdf", "-o", str(tmp_path / "c.pdf")) == 2
    assert not (tmp_path / "c.pdf").exists()


def test_refund_base_fee_rate_and_payout_commands(hq_dir, capsys):
    tomorrow = (datetime.now(timezone.utc).date() + timedelta(days=1)).isoformat()
    assert kit(hq_dir, "refund", "hq_1", "--reason", "cancelled") == 0
    capsys.readouterr()
    assert kit(hq_dir, "base-fee", "site-a", "--year", "2027", "--json") == 0
    assert _json(capsys)["site_fen"] == -500_000
    assert kit(hq_dir, "rate", "share_bps", "900", "--from", tomorrow, "--category", "game") == 0
    capsys.readouterr()
    assert kit(hq_dir, "rates", "--json") == 0
    assert _json(capsys)[0]["value"] == 900
    assert kit(hq_dir, "adjust", "site-a", "--fen", "600000", "--reason", "credit") == 0
    from hq.ledger import payouts
    from hq.service import HQ
    from hq.settings import HQSettings

    service = HQ.open(HQSettings(dir=hq_dir, registry_url=None))
    asked = payouts.request(service, "site-a", "w-1", 50_000)
    service.close()
    capsys.readouterr()
    assert kit(hq_dir, "payouts", "--status", "requested", "--json") == 0
    assert _json(capsys)[0]["id"] == asked["id"]
    assert kit(hq_dir, "approve", str(asked["id"]), "--ref", "BANK-9") == 0
    assert "approved" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (("issue", "site-a", "--day", "2026-13-01"), "--day must be a date"),
    (("issue", "site-a", "--cadence", "daily", "--day", "2026-10-01"), "cadence must be one of"),
    (("issue", "nobody", "--day", "2026-10-01"), "has no licence"),
    (("refund", "hq_unknown", "--reason", "x"), "no paid entry"),
    (("adjust", "site-a", "--fen", "0", "--reason", "x"), "non-zero"),
    (("rate", "share_bps", "900", "--from", "2020-01-01"), "never retroactively"),
    (("approve", "7", "--ref", "BANK-1"), "does not exist"),
    (("export", "9"), "does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(hq_dir, capsys, args, message):
    assert kit(hq_dir, *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert kit(hq_dir, "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
