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


def _key_files(tmp_path, gateway: str) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    """The enable arguments for `gateway` with its keys in files, and the secrets that must never show."""
    if gateway == "alipay":
        from hq.payments.sandbox_alipay import AlipaySandbox

        box = AlipaySandbox(url="http://127.0.0.1:9/")
        creds = box.add_app()
        files = {"private_key": creds.pop("private_key"), "public_key": creds.pop("public_key")}
    else:
        from hq.payments.sandbox_wechat import WechatSandbox

        box = WechatSandbox(url="http://127.0.0.1:9/")
        creds = box.add_merchant()
        files = {k: creds.pop(k) for k in ("private_key", "public_key", "apiv3_key")}
    (tmp_path / "creds.json").write_text(json.dumps(creds))
    args = ["enable", gateway, "--credentials", str(tmp_path / "creds.json")]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        args += [f"--{name.replace('_', '-')}", str(tmp_path / name)]
    secrets = [files["private_key"].splitlines()[1], files.get("apiv3_key", files["private_key"])]
    return args, secrets


@pytest.mark.parametrize("gateway", ["alipay", "wechat"])
def test_enable_alipay_or_wechat_with_keys_from_files_never_showing_them(tmp_path, capsys, gateway):
    hq_dir = tmp_path / "hq"
    args, secrets = _key_files(tmp_path, gateway)
    assert kit(hq_dir, *args) == 0
    assert kit(hq_dir, "list", "--json") == 0
    shown = capsys.readouterr()
    listed = json.loads(shown.out[shown.out.index("["):])
    assert [(g["name"], g["enabled"]) for g in listed] == [(gateway, True)]
    stored = (hq_dir / "hq.sqlite3").read_bytes().decode("latin-1")
    for secret in secrets:
        assert secret not in shown.out + shown.err and secret not in stored


@pytest.mark.parametrize("gateway, flag, content, message", [
    ("alipay", "--private-key", None, "private key file missing.pem"),
    ("alipay", "--private-key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
     "private_key does not load"),
    ("alipay", "--private-key", "encrypted", "private key is encrypted"),
    ("wechat", "--private-key", "encrypted", "private_key is not a PEM private key"),
    ("alipay", "--public-key", b"\xff\xfe\x00binary", "not text"),
    ("alipay", "--public-key", b"   \n", "empty"),
    ("wechat", "--apiv3-key", b"too-short", "32-character APIv3 key"),
    ("wechat", "--public-key", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate"),
])
def test_a_bad_key_file_is_one_line_exit_2_and_changes_nothing(tmp_path, capsys, gateway, flag, content, message):
    hq_dir = tmp_path / "hq"
    args, secrets = _key_files(tmp_path, gateway)
    bad = tmp_path / "missing.pem"
    if content == "encrypted":  # a key that needs a password HQ does not have
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        content = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"))
    if content is not None:
        bad.write_bytes(content)
    args[args.index(flag) + 1] = str(bad)
    assert kit(hq_dir, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert all(secret not in err for secret in secrets)
    assert kit(hq_dir, "list", "--json") == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("["):]) == []
