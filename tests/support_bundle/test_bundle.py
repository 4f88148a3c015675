"""`kitctl support-bundle`: a test plants known secrets everywhere a bundle reads from; none survive."""

from __future__ import annotations

import base64
import json
import secrets
import tarfile
from pathlib import Path

import pytest

from kitcore.redact import MASK, Redactor
from kitctl.support.gather import Sources, write_bundle

DB_PASSWORD = "Db-" + secrets.token_hex(12)
SECRET_KEY = secrets.token_urlsafe(32)
SITE_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
AGENT_TOKEN = secrets.token_urlsafe(24)
SMTP_PASSWORD = "smtp-" + secrets.token_hex(8)
LICENCE = ("eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0." + base64.urlsafe_b64encode(b'{"sub":"xingchen","tier":"pro"}')
           .decode().rstrip("=") + "." + secrets.token_urlsafe(64))
BUYER_EMAIL, BUYER_PHONE = "zhang.san@example.cn", "13812345678"
OTHER_JWT = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJvcGVyYXRvciJ9.c2lnbmF0dXJlLW9mLWl0"
PLANTED = [DB_PASSWORD, SECRET_KEY, SITE_KEY, AGENT_TOKEN, SMTP_PASSWORD, LICENCE, BUYER_EMAIL, BUYER_PHONE, OTHER_JWT]


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "secrets" / "plugins").mkdir(parents=True)
    files = {"db_password": DB_PASSWORD, "database_url": f"postgresql+psycopg://kit:{DB_PASSWORD}@db:5432/kit",
             "storefront_secret_key": SECRET_KEY, "site_key": SITE_KEY, "agent_token": AGENT_TOKEN,
             "licence_token": LICENCE, "plugins/notify.json": json.dumps({"smtp_password": SMTP_PASSWORD})}
    for name, text in files.items():
        (site / "secrets" / name).write_text(text + "\n")
    (site / "compose.yaml").write_text("services: {}\n")
    return site


def _leaky_sources() -> Sources:
    """Every part a bundle reads, each carrying the planted secrets in the ways logs and rows do."""
    log = "\n".join([
        f'{{"msg": "connecting", "url": "postgresql://kit:{DB_PASSWORD}@db/kit"}}',
        f"GET /v1/catalog Authorization: Bearer {LICENCE}",
        f"order o-1 for {BUYER_EMAIL} / {BUYER_PHONE} placed",
        f"secret key loaded: {SECRET_KEY}", f"site key {base64.b64encode(SITE_KEY.encode()).decode()}",
        f"operator session {OTHER_JWT}", f"smtp password={SMTP_PASSWORD} host=mail",
        '{"msg": "agent started", "licence": "active", "outbox_pending": 12}'])
    return Sources(
        status=lambda: {"project": "kit-xingchen", "services": [{"service": "agent", "state": "running",
                                                                  "env": {"KIT_AGENT_TOKEN": AGENT_TOKEN}}]},
        doctor=lambda: {"ok": True, "checks": [{"name": "licence", "detail": f"token {LICENCE[:40]}… ok"}]},
        versions=lambda: {"kitctl": "0.1.0", "images": {"agent": "kitctl/agent:0.1.0"}},
        services=lambda: ["agent", "storefront", "db"],
        logs=lambda service, lines: "\n".join(log.splitlines()[-lines:]) if service != "db" else _broken(),
        metrics=lambda: 'kitagent_up 1.0\nkitagent_outbox_backlog{status="pending"} 12.0\n',
        site_state=lambda: {"licence_status": "active", "licence_token": LICENCE,
                            "health": {"db": "ok", "outbox_pending": 12}, "status_reason": f"call {BUYER_PHONE}"},
        audit=lambda n: [{"id": 1, "action": "order_decided", "detail": {"buyer_contact": BUYER_EMAIL,
                                                                         "decision": "approve"}}][:n])


def _broken() -> str:
    raise ConnectionError(f"db container gone; url postgresql://kit:{DB_PASSWORD}@db/kit")


def _read(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        return {m.name.removeprefix("support-bundle/"): tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def test_no_planted_secret_survives_in_the_bundle(tmp_path: Path) -> None:
    out = tmp_path / "bundle.tar.gz"
    manifest = write_bundle(out, _site(tmp_path), _leaky_sources(), lines=50)
    files = _read(out)
    assert out.stat().st_mode & 0o777 == 0o600
    everything = "\n".join(files.values())
    for secret in PLANTED:
        for form in (secret, base64.b64encode(secret.encode()).decode().rstrip("=")):
            assert form not in everything, f"{secret[:8]}… survived"
    assert MASK in files["logs/agent.log"]
    # what support needs is still there
    assert {"status.json", "doctor.json", "versions.json", "metrics/agent.prom", "site-state.json", "audit.json",
            "logs/agent.log", "logs/storefront.log", "manifest.json"} <= set(files)
    assert '"outbox_pending": 12' in files["logs/agent.log"] and "kitagent_up 1.0" in files["metrics/agent.prom"]
    assert json.loads(files["site-state.json"])["health"] == {"db": "ok", "outbox_pending": 12}
    assert json.loads(files["audit.json"])[0]["detail"]["decision"] == "approve"
    # a part that could not be gathered is recorded, redacted too
    assert "logs/db.log" in manifest["errors"] and "ConnectionError" in manifest["errors"]["logs/db.log"]


def test_log_lines_are_bounded(tmp_path: Path) -> None:
    from kitcore.errors import InvalidInput

    site = _site(tmp_path)
    with pytest.raises(InvalidInput, match="--lines"):
        write_bundle(tmp_path / "b.tgz", site, _leaky_sources(), lines=0)
    write_bundle(tmp_path / "b.tgz", site, _leaky_sources(), lines=2)
    assert len(_read(tmp_path / "b.tgz")["logs/agent.log"].splitlines()) == 2


@pytest.mark.parametrize("text,kept", [
    ("GET /p/G-QQ-100 200 12ms", "GET /p/G-QQ-100 200 12ms"),
    ("kitagent_db_up 1.0", "kitagent_db_up 1.0"),
    ("order o1234567890abcdef decided approve", "order o1234567890abcdef decided approve"),
])
def test_redaction_leaves_ordinary_text_alone(text: str, kept: str) -> None:
    assert Redactor([DB_PASSWORD]).text(text) == kept


def test_the_cli_says_one_line_for_a_missing_site(tmp_path: Path) -> None:
    from tests.support.cli import kitctl

    run = kitctl("support-bundle", "--site-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "b.tgz"), check=False)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and run.stderr.startswith("error:")
    assert not (tmp_path / "b.tgz").exists()
