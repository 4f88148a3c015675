"""`kitctl hq keys …`, `kitctl hq licence issue` and `kitctl licence inspect` as a person runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kitctl.cli import run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hq(tmp_path, monkeypatch):
    monkeypatch.setenv("KITCTL_HQ_DIR", str(tmp_path / "hq"))
    assert run(["hq", "keys", "init"]) == 0
    return tmp_path


def _jwks(hq, capsys) -> Path:
    capsys.readouterr()
    assert run(["hq", "keys", "export"]) == 0
    path = hq / "jwks.json"
    path.write_text(capsys.readouterr().out)
    return path


def _issue(capsys, *extra: str) -> str:
    capsys.readouterr()
    assert run(["hq", "licence", "issue", "--site", "xingchen", "--tier", "pro",
                "--categories", "game,phone", "--days", "365", *extra]) == 0
    return capsys.readouterr().out.strip()


def test_issue_then_inspect_round_trips(hq, capsys):
    jwks = _jwks(hq, capsys)
    token = _issue(capsys)
    assert run(["licence", "inspect", token, "--hq-keys", str(jwks), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["status"] == "valid"
    assert report["claims"]["sub"] == "xingchen" and report["claims"]["tier"] == "pro"
    assert 363 <= report["days_left"] <= 365


def test_inspect_reads_at_file_and_stdin_and_shows_a_table(hq, capsys, monkeypatch):
    import io

    jwks = _jwks(hq, capsys)
    token = _issue(capsys)
    (hq / "licence.jwt").write_text(token + "\n")
    assert run(["licence", "inspect", f"@{hq / 'licence.jwt'}", "--hq-keys", str(jwks)]) == 0
    out = capsys.readouterr().out
    assert "xingchen" in out and "days left" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO(token))
    monkeypatch.setenv("KITCTL_HQ_KEYS", str(jwks))
    assert run(["licence", "inspect", "-"]) == 0


def test_inspect_of_a_tampered_token_exits_2_with_one_line(hq, capsys):
    jwks = _jwks(hq, capsys)
    token = _issue(capsys)
    payload = token.split(".")[1]
    forged = token.replace(payload, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1])
    assert run(["licence", "inspect", forged, "--hq-keys", str(jwks)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "rejected" in captured.err


@pytest.mark.parametrize("argv,needle", [
    (["licence", "inspect", "x.y.z"], "no pinned HQ keys"),
    (["licence", "inspect", "x.y.z", "--hq-keys", "/dev/null"], "HQ keys file /dev/null is not JSON"),
    (["hq", "licence", "issue", "--site", "s1", "--categories", "game", "--tier", "gold"], "unknown tier"),
    (["hq", "licence", "issue", "--site", "s1", "--categories", "game", "--days", "-3"], "--days"),
])
def test_bad_input_is_one_line_and_exit_code_2(hq, capsys, argv, needle):
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_unreadable_licence_file_is_one_line(hq, capsys):
    jwks = _jwks(hq, capsys)
    assert run(["licence", "inspect", "@/nonexistent/file", "--hq-keys", str(jwks)]) == 2
    assert "cannot read licence file" in capsys.readouterr().err


def test_keys_init_twice_is_refused(hq, capsys):
    assert run(["hq", "keys", "init"]) == 2
    assert "already exist" in capsys.readouterr().err


def test_real_process_prints_no_traceback_and_exits_2(tmp_path):
    env = {**os.environ, "KITCTL_HQ_DIR": str(tmp_path / "hq"), "PYTHONPATH": str(REPO)}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "A" * 43}]}))
    proc = subprocess.run([sys.executable, "-m", "kitctl", "licence", "inspect", "not-a-token", "--hq-keys", str(jwks)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_version_is_printed(capsys):
    from kitcore import __version__

    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kitctl {__version__}"
