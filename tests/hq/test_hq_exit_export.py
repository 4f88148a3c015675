"""`kitctl hq export --site ID --out FILE`: HQ's records of one site in the exit export's open formats, checksummed."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tarfile
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from hq.ledger import events, payouts, statements
from kitctl.cli import run
from tests.hq.ledger_support import buy, open_settlement_hq

OCT = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


@pytest.fixture
def hq_dir(tmp_path, db_url):  # type: ignore[no-untyped-def]
    path = tmp_path / "hq"
    service = open_settlement_hq(path, db_url)
    bought = [buy(service, "site-a", f"a{n}", 5_000) for n in range(3)]
    assert [b["status"] for b in bought] == ["delivered"] * 3
    buy(service, "site-b", "b0", 5_000)
    events.refund(service, "op", bought[0]["hq_order_id"], "=买家取消")
    events.adjust(service, "op", "site-a", 100_000, "opening credit", at=OCT)
    statements.issue(service, "op", "site-a", "monthly", date(2026, 10, 1))
    asked = payouts.request(service, "site-a", "w-1", 50_000)
    payouts.approve(service, "op", asked["id"], "BANK-1")
    service.close()
    return path, db_url


def _export(hq_dir, target: Path) -> int:  # type: ignore[no-untyped-def]
    path, db_url = hq_dir
    extra = ["--database-url", db_url] if db_url else []
    return run(["hq", "export", "--site", "site-a", "--out", str(target), "--hq-dir", str(path), *extra])


def _unpack(archive: Path, into: Path) -> dict[str, bytes]:
    into.mkdir()
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    for name, data in files.items():
        (into / name).write_bytes(data)
    return files


def test_hq_exports_what_it_holds_for_one_site_checked_by_its_sums(hq_dir, tmp_path):
    target = tmp_path / "site-a.tar"
    assert _export(hq_dir, target) == 0
    assert target.stat().st_mode & 0o777 == 0o600
    files = _unpack(target, tmp_path / "x")
    assert set(files) == {f"{n}.{x}" for n in ("orders", "statements", "ledger", "payouts", "licences", "catalog")
                          for x in ("csv", "json")} | {"manifest.json", "SHA256SUMS"}
    check = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path / "x", capture_output=True)
    assert check.returncode == 0, check.stdout
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "kitctl hq site export v1" and manifest["site"] == "site-a"
    orders = json.loads(files["orders.json"])
    assert sorted(o["order_id"] for o in orders) == ["a0", "a1", "a2"]  # site-b's order stays out
    assert orders[0]["buyer_contact"] == "buyer@example.cn" and "buyer_ip" not in orders[0]
    assert b"198.51.100.7" not in b"".join(files.values())  # buyers' IPs are never exported
    ledger = json.loads(files["ledger.json"])
    assert [e["kind"] for e in ledger].count("order") == 3 and {"refund", "adjustment", "payout", "payout_fee"} <= \
        {e["kind"] for e in ledger}
    path, db_url = hq_dir
    from hq.service import HQ
    from hq.settings import HQSettings

    service = HQ.open(HQSettings(dir=path, database_url=db_url, registry_url=None))
    try:
        assert sum(e["net_fen"] for e in ledger) == payouts.balance(service, "site-a")["balance_fen"]
    finally:
        service.close()
    rows = list(csv.DictReader(io.StringIO(files["ledger.csv"].decode("utf-8-sig"))))
    assert rows[0]["hq_share_fen"].startswith("-") and any(r["reference"] == "'=买家取消" for r in rows)
    assert [(p["amount_fen"], p["status"], p["transfer_ref"]) for p in json.loads(files["payouts.json"])] == \
        [(50_000, "approved", "BANK-1")]
    statement = json.loads(files["statements.json"])[0]
    assert statement["period_start"] == "2026-10-01" and statement["totals"]["adjustments"] == 100_000
    assert [lic["tier"] for lic in json.loads(files["licences.json"])] == ["pro"]
    assert {c["sku"] for c in json.loads(files["catalog.json"])} == {"topup", "phone-10"}


def test_an_existing_file_or_an_unknown_site_is_one_line_exit_2_and_writes_nothing(hq_dir, tmp_path, capsys):
    used = tmp_path / "used.tar"
    used.write_text("mine")
    assert _export(hq_dir, used) == 2
    assert "exists" in capsys.readouterr().err and used.read_text() == "mine"
    path, db_url = hq_dir
    target = tmp_path / "nobody.tar"
    extra = ["--database-url", db_url] if db_url else []
    assert run(["hq", "export", "--site", "nobody", "--out", str(target), "--hq-dir", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no licence" in err and len(err.splitlines()) == 1
    assert not target.exists() and not (tmp_path / "nobody.tar.partial").exists()
