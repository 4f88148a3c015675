"""`kitctl hq …` against a local HQ directory: tables, JSON, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest

from kitctl.cli import run
from kitcore.licence.keys import HQKeyStore
from kitcore.licence.token import verify_licence


@pytest.fixture
def hq_dir(tmp_path):
    return tmp_path / "hq"


def kit(hq_dir, *args: str) -> int:
    return run(["hq", *args, "--hq-dir", str(hq_dir)])


def test_licence_commands_record_in_the_hq_database(hq_dir, capsys):
    assert kit(hq_dir, "licence", "issue", "--site", "xingchen", "--tier", "pro", "--categories", "game,phone",
               "--registry-url", "") == 0
    token = capsys.readouterr().out.strip()
    keys = HQKeyStore(hq_dir).pinned()
    assert verify_licence(token, keys).claims.categories == ["game", "phone"]
    assert kit(hq_dir, "licence", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(l["site"], l["status"], l["tier"]) for l in listed] == [("xingchen", "active", "pro")]
    assert "token" not in listed[0]
    assert kit(hq_dir, "licence", "upgrade", "xingchen", "--tier", "flagship") == 0
    assert "flagship" in capsys.readouterr().out
    assert kit(hq_dir, "licence", "suspend", "xingchen", "--reason", "late payment") == 0
    assert kit(hq_dir, "licence", "resume", "xingchen") == 0
    assert kit(hq_dir, "licence", "renew", "xingchen", "--days", "30") == 0
    capsys.readouterr()
    assert kit(hq_dir, "licence", "revoke", "xingchen", "--reason", "contract ended", "--json") == 0
    revoked = json.loads(capsys.readouterr().out)[0]
    assert (revoked["status"], revoked["reason"]) == ("revoked", "contract ended")
    assert kit(hq_dir, "licence", "list") == 0
    assert "xingchen" in capsys.readouterr().out


def test_licence_issue_records_who_runs_the_site_and_where(hq_dir, capsys):
    from hq.models import Site
    from hq.service import HQ
    from hq.settings import HQSettings

    assert kit(hq_dir, "licence", "issue", "--site", "xingchen", "--categories", "game", "--registry-url", "",
               "--licensee", "星辰游戏", "--domain", "Shop.Example.CN") == 0
    service = HQ.open(HQSettings(dir=hq_dir, registry_url=None))
    try:
        with service.read() as conn:
            row = conn.execute(Site.__table__.select()).one()
    finally:
        service.close()
    assert (row.licensee, row.domain) == ("星辰游戏", "shop.example.cn")


@pytest.mark.parametrize("args, message", [
    (["licence", "issue", "--site", "BAD", "--categories", "game"], "site id 'BAD'"),
    (["licence", "issue", "--site", "ok-site", "--categories", "nope"], "unknown categories"),
    (["licence", "issue", "--site", "ok-site", "--categories", "game", "--tier", "gold"], "unknown tier"),
    (["licence", "issue", "--site", "ok-site", "--categories", "game", "--domain", "not a host"], "domain: "),
    (["licence", "issue", "--site", "ok-site", "--categories", "game", "--licensee", "two\nlines"], "licensee: "),
    (["licence", "revoke", "ghost", "--reason", "x"], "site 'ghost' has no licence"),
    (["licence", "suspend", "ghost", "--reason", ""], "--reason must be one line"),
    (["licence", "upgrade", "ghost"], "nothing to upgrade"),
    (["operator", "add", "Bad Name"], "operator name"),
    (["reviews", "resolve", "hq_00", "maybe"], "decision must be"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(hq_dir, capsys, args, message):
    assert kit(hq_dir, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (hq_dir / "registry" / "htpasswd").exists() or "BAD" not in (hq_dir / "registry" / "htpasswd").read_text()
    assert kit(hq_dir, "licence", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_operator_catalog_and_reviews(hq_dir, tmp_path, capsys):
    assert kit(hq_dir, "operator", "add", "alice") == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert token.startswith("hqop_") and token not in captured.err
    assert kit(hq_dir, "operator", "add", "alice") == 2
    assert "already exists" in capsys.readouterr().err
    db = (hq_dir / "hq.sqlite3").read_bytes()
    assert token.encode() not in db and (hq_dir / "hq.sqlite3").stat().st_mode & 0o777 == 0o600

    items = tmp_path / "items.csv"
    items.write_text("sku,name,category,face_value_cents,price_cents,max_qty\ngame-100,点券 100,game,10000,9500,5\n")
    keys = tmp_path / "keys.csv"
    keys.write_text("sku,serial,secret\ngame-100,S-1,SECRET-1\ngame-100,S-2,SECRET-2\n")
    assert kit(hq_dir, "catalog", "import", str(items)) == 0
    capsys.readouterr()
    assert kit(hq_dir, "catalog", "import", str(keys), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"added": 2, "skipped": 0, "skus": ["game-100"]}
    assert kit(hq_dir, "catalog", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(i["sku"], i["stock"], i["max_qty"]) for i in listed] == [("game-100", 2, 5)]
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,category,face_value_cents,price_cents\ngame-200,x,game,-5,1\n")
    assert kit(hq_dir, "catalog", "import", str(bad)) == 2
    assert "line 2" in capsys.readouterr().err
    assert kit(hq_dir, "reviews", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert kit(hq_dir, "reviews", "resolve", "hq_00", "approve") == 2
    assert "does not exist" in capsys.readouterr().err


def test_licence_features_and_regions_are_checked_from_the_cli_too(hq_dir, capsys):
    for option, value in (("--features", "coupons,W\x10"), ("--regions", "CN,not a region")):
        assert kit(hq_dir, "licence", "issue", "--site", "xingchen", "--categories", "game", option, value,
                   "--registry-url", "") == 2
        assert capsys.readouterr().err.startswith(f"error: {option[2:]}: ")
    assert kit(hq_dir, "licence", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
