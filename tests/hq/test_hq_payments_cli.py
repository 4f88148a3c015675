"""`kitctl hq payments`: credentials from a file, sealed, never printed; bad input is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from kitctl.cli import run

KEY = "merchant-key-never-printed-0123"


def kit(hq_dir, *args: str) -> int:  # type: ignore[no-untyped-def]
    return run(["hq", "payments", *args, "--hq-dir", str(hq_dir)])


def test_enable_list_disable_without_ever_showing_the_key(tmp_path, capsys):
    hq_dir, creds = tmp_path / "hq", tmp_path / "epay.json"
    creds.write_text(json.dumps({"api_url": "https://pay.example.test/", "pid": "1001", "key": KEY}))
    assert kit(hq_dir, "enable", "epay", "--credentials", str(creds)) == 0
    assert kit(hq_dir, "list", "--json") == 0
    out = capsys.readouterr().out
    listed = json.loads(out[out.index("["):])
    assert [(g["name"], g["enabled"]) for g in listed] == [("epay", True)]
    assert kit(hq_dir, "disable", "epay") == 0
    assert kit(hq_dir, "list") == 0
    shown = capsys.readouterr()
    assert KEY not in shown.out + shown.err + out
    assert KEY not in (hq_dir / "hq.sqlite3").read_bytes().decode("latin-1")  # sealed at rest


@pytest.mark.parametrize("content, args, message", [
    ('{"api_url": "https://x/", "pid": "1"}', ["enable", "epay"], "epay credentials lack key"),
    ("not json", ["enable", "epay"], "not JSON"),
    ('["a"]', ["enable", "epay"], "JSON object of strings"),
    ('{"pid": "1"}', ["enable", "alipay-nope"], "unknown payment gateway"),
    (None, ["disable", "epay"], "is not configured"),
])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, capsys, content, args, message):
    hq_dir, creds = tmp_path / "hq", tmp_path / "c.json"
    if content is not None:
        creds.write_text(content)
        args = [*args, "--credentials", str(creds)]
    assert kit(hq_dir, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert kit(hq_dir, "list", "--json") == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("["):]) == []


def test_a_missing_credentials_file_is_named(tmp_path, capsys):
    assert kit(tmp_path / "hq", "enable", "epay", "--credentials", str(tmp_path / "none.json")) == 2
    assert "none.json" in capsys.readouterr().err
