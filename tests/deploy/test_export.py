"""`kitctl export`: the storefront's export streamed out of `docker exec`, written 0600, checked against SHA256SUMS.

The exec is faked at the Docker API boundary only: the storefront's real
`python -m storefront export` runs as a process on a seeded site database and
its stdout is handed over in frames as docker-py's demuxed stream does.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from kitcore.errors import InvalidInput, KitError
from kitctl.deploy import site_export as exporting
from sitedb.buyer import Buyer, BuyerBox
from sitedb.engine import make_engine, session_factory
from sitedb.models import Order
from sitedb.sealing import load_site_key
from tests.support.exec_fake import STDERR, STDOUT, FakeExecAPI
from tests.storefront.support import ROOT, add_statement, book_entries, seed, write_site_files

OCT = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


def _site(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'site.db'}"
    seed(url)
    env = {**write_site_files(tmp_path / "files"), "KIT_DATABASE_URL": url}
    box = BuyerBox(load_site_key(Path(env["KIT_SITE_KEY_FILE"])))
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        for oid, contact in (("O-1", "13800138000"), ("O-2", "=HYPERLINK(\"x\")")):
            s.add(Order(id=oid, sku="G-QQ-100", item_name="腾讯Q币 100元", category="game", quantity=1,
                        unit_price_cents=9650, total_cents=9650, hq_price_cents=9650, status="delivered",
                        hq_order_id=f"hq_{oid}", buyer_sealed=box.seal(oid, Buyer(contact, "qq-1", "10.0.0.9")),
                        buyer_contact_index=box.contact_index(contact), password_hash="$argon2id$secret-hash",
                        created_at=OCT))
    engine.dispose()
    book_entries(url, [{"id": 1, "posted_at": OCT, "kind": "order", "source": "hq_O-1", "reference": "O-1",
                        "gross_fen": 9650, "hq_cost_fen": -9650, "hq_share_fen": -1158}])
    add_statement(url, 3, "2026-10-01", "2026-11-01", {"orders_gross": 9650, "hq_cost": -9650, "hq_share": -1158,
                                                       "closing": -1158}, answer="confirmed", answer_state="sent",
                  hq_response="confirmed")
    from sitedb.tables import payout_requests

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(payout_requests.insert().values(
            id="p-" + "a" * 24, amount_fen=20_000, requested_by="admin:fin", requested_at=OCT, send_state="sent",
            hq_id=4, status="approved", fee_fen=200, transfer_ref="BANK-9", decided_at=OCT))
    engine.dispose()
    return env


class StorefrontExec(FakeExecAPI):
    """The storefront's export run as a local process answers the exec."""

    def __init__(self, env: dict[str, str], tamper: bool = False) -> None:
        super().__init__()
        self.env = env
        self.tamper = tamper

    def answer(self, command: list[str]) -> list[tuple[int, bytes]]:
        proc = subprocess.run([sys.executable, *command[1:]], capture_output=True, cwd=ROOT, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **self.env})
        self.exit_code = proc.returncode
        data = _tampered(proc.stdout) if self.tamper else proc.stdout
        frames = [(STDOUT, data[i:i + 7_000]) for i in range(0, len(data), 7_000)]  # tar blocks straddle them
        return [*frames[:1], (STDERR, proc.stderr), *frames[1:]]  # stderr between them, as the engine may send it


def _tampered(data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as src, tarfile.open(fileobj=out, mode="w|") as dst:
        for member in src:
            body = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "ledger.csv":
                body = body.replace(b"9650", b"9651")
            member.size = len(body)
            dst.addfile(member, io.BytesIO(body))
    return out.getvalue()


@pytest.fixture
def deployed(monkeypatch):  # type: ignore[no-untyped-def]
    from kitctl.deploy import identity, operate

    monkeypatch.setattr(identity, "check_ours", lambda api, project: None)
    monkeypatch.setattr(operate, "running_container", lambda client, project, service: f"{project}-{service}")


def test_the_export_lands_as_private_files_checked_against_their_sums(tmp_path, deployed):
    api = StorefrontExec(_site(tmp_path))
    target = tmp_path / "exit"
    manifest = exporting.export(SimpleNamespace(api=api), "kit-xingchen", target)
    assert api.commands == [["python", "-m", "storefront", "export"]]
    names = {p.name for p in target.iterdir()}
    assert names == {f"{n}.{x}" for n in ("orders", "statements", "ledger", "payouts", "catalog", "price_rules")
                     for x in ("csv", "json")} | {"manifest.json", "SHA256SUMS"}
    assert target.stat().st_mode & 0o777 == 0o700
    assert all((target / n).stat().st_mode & 0o777 == 0o600 for n in names)
    assert manifest["site"] == "xingchen" and manifest["files"]["orders.csv"]["rows"] == 2
    orders = list(csv.DictReader(io.StringIO((target / "orders.csv").read_text(encoding="utf-8-sig"))))
    assert [o["buyer_contact"] for o in orders] == ["13800138000", "'=HYPERLINK(\"x\")"]  # opened; no formula
    text = "".join((target / n).read_text(encoding="utf-8") for n in names)
    assert "argon2id" not in text and "10.0.0.9" not in text  # order passwords and buyers' IPs stay behind
    ledger = json.loads((target / "ledger.json").read_text(encoding="utf-8"))
    assert ledger == [{"id": 1, "posted_at": "2026-10-14T09:00:00Z", "kind": "order", "source": "hq_O-1",
                       "reference": "O-1", "gross_fen": 9650, "hq_cost_fen": -9650, "hq_share_fen": -1158,
                       "fees_fen": 0, "adjustment_fen": 0, "payout_fen": 0, "net_fen": -1158}]
    statement = json.loads((target / "statements.json").read_text(encoding="utf-8"))[0]
    assert (statement["period_start"], statement["totals"]["closing"], statement["hq_response"]) == \
        ("2026-10-01", -1158, "confirmed")
    payouts = json.loads((target / "payouts.json").read_text(encoding="utf-8"))
    assert [(p["amount_fen"], p["fee_fen"], p["status"], p["transfer_ref"]) for p in payouts] == \
        [(20_000, 200, "approved", "BANK-9")]
    ledger_csv = list(csv.DictReader(io.StringIO((target / "ledger.csv").read_text(encoding="utf-8-sig"))))
    assert ledger_csv[0]["hq_share_fen"] == "-1158"  # a number, not text guarded as a formula
    check = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=target, capture_output=True)
    assert check.returncode == 0, check.stdout


def test_a_file_that_does_not_match_its_sum_leaves_nothing_behind(tmp_path, deployed):
    api = StorefrontExec(_site(tmp_path), tamper=True)
    with pytest.raises(KitError, match="^ledger.csv does not match its SHA-256"):
        exporting.export(SimpleNamespace(api=api), "kit-xingchen", tmp_path / "exit")
    assert not (tmp_path / "exit").exists()


def test_unexpected_entries_in_the_stream_are_refused(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo("../escape.csv")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"x\n"))
    data.seek(0)
    (tmp_path / "t").mkdir()
    with pytest.raises(KitError, match="unexpected entry '../escape.csv'"):
        exporting.unpack(data, tmp_path / "t")
    assert not (tmp_path / "escape.csv").exists() and not any((tmp_path / "t").iterdir())


def test_a_failing_storefront_export_is_one_line_and_leaves_the_given_directory_empty(tmp_path, deployed):
    env = {**_site(tmp_path), "KIT_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"}
    given = tmp_path / "given"
    given.mkdir()
    with pytest.raises(KitError) as failed:
        exporting.export(SimpleNamespace(api=StorefrontExec(env)), "kit-xingchen", given)
    assert str(failed.value).startswith("the storefront's export failed: ") and "\n" not in str(failed.value)
    assert given.is_dir() and not any(given.iterdir())


def test_kitctl_export_refuses_a_directory_in_use_with_exit_2(tmp_path, monkeypatch, capsys, deployed):
    from kitctl.cli import run
    from kitctl.deploy import compose, rendered_site

    monkeypatch.setattr(rendered_site, "require_site_dir", lambda path: path)
    monkeypatch.setattr(compose, "load_project", lambda path: "kit-xingchen")
    monkeypatch.setattr("kitctl.engine.connect", lambda host: SimpleNamespace(api=StorefrontExec({})))
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert run(["export", str(used), "--site-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists and is not an empty directory" in err and len(err.splitlines()) == 1
    assert (used / "keep.txt").read_text() == "mine"
    assert run(["export", str(tmp_path / "no" / "such"), "--site-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(InvalidInput):
        exporting.prepare(used / "keep.txt")


def test_export_is_in_the_command_table():
    from kitctl.cli import COMMANDS

    assert COMMANDS["export"] == ("export", "register")
    assert os.path.exists(ROOT / "kitctl" / "cli" / "export.py")
