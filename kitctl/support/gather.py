"""Write a support bundle: every part gathered, every text redacted, one tar.gz (mode 0600).

What goes in comes from `Sources` (the engine-backed ones are in `kitctl.support.sources`);
a part that cannot be gathered is written as its error, because a bundle is most wanted
when something is broken. Nothing is written unredacted: the archive is built in memory
from redacted texts only.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kitcore.redact import Redactor

MAX_LOG_LINES = 10_000


@dataclass
class Sources:
    """What a bundle is made of; each callable may raise (its error is recorded instead)."""

    status: Callable[[], Any]
    doctor: Callable[[], Any]
    versions: Callable[[], Any]
    services: Callable[[], list[str]]
    logs: Callable[[str, int], str]
    metrics: Callable[[], str]
    site_state: Callable[[], Any]
    audit: Callable[[int], Any]


def known_secrets(site_dir: Path) -> list[str]:
    """The values that must not leave the host: every secret file of the site, the licence token."""
    from kitcore.sitedir import SiteDir

    secrets_dir = SiteDir(site_dir).secrets
    found = []
    for path in sorted(secrets_dir.rglob("*")) if secrets_dir.is_dir() else []:
        if path.is_file() and path.stat().st_size <= 1024 * 1024:
            text = path.read_text(encoding="utf-8", errors="replace")
            found.append(text)
            found.extend(_parts(text))
    return found


def _parts(text: str) -> list[str]:
    """Secrets inside a secret: the password of a database URL, the values of a JSON secret file."""
    from urllib.parse import urlsplit

    out = []
    try:
        url = urlsplit(text.strip())
        if url.password:
            out.append(url.password)
    except ValueError:
        pass
    try:
        doc = json.loads(text)
    except ValueError:
        return out
    if isinstance(doc, dict):
        out.extend(str(v) for v in doc.values() if isinstance(v, (str, int)) and len(str(v)) >= 6)
    return out


def write_bundle(out: Path, site_dir: Path, sources: Sources, lines: int = 200, audit_entries: int = 100) -> dict[str, Any]:
    """Gather, redact and write the archive; returns its manifest (what is in it, what failed)."""
    if not 1 <= lines <= MAX_LOG_LINES:
        from kitcore.errors import InvalidInput

        raise InvalidInput(f"--lines must be between 1 and {MAX_LOG_LINES}")
    redactor = Redactor(known_secrets(site_dir))
    files: dict[str, str] = {}
    errors: dict[str, str] = {}

    def gather(name: str, work: Callable[[], Any], as_json: bool = True) -> None:
        try:
            value = work()
        except Exception as exc:  # noqa: BLE001 - a bundle records what it could not gather
            errors[name] = redactor.text(f"{type(exc).__name__}: {exc}")[:500]
            return
        files[name] = (json.dumps(redactor.data(value), indent=2, ensure_ascii=False, default=str) if as_json
                       else redactor.text(str(value)))

    gather("status.json", sources.status)
    gather("doctor.json", sources.doctor)
    gather("versions.json", sources.versions)
    gather("metrics/agent.prom", sources.metrics, as_json=False)
    gather("site-state.json", sources.site_state)
    gather("audit.json", lambda: sources.audit(audit_entries))
    try:
        services = sources.services()
    except Exception as exc:  # noqa: BLE001
        services, errors["services"] = [], redactor.text(str(exc))[:500]
    for service in services:
        gather(f"logs/{service}.log", lambda s=service: sources.logs(s, lines), as_json=False)
    manifest = {"created_at": int(time.time()), "lines_per_log": lines, "files": sorted(files), "errors": errors,
                "redaction": "known site secrets, tokens, passwords, e-mail addresses and phone numbers masked"}
    files["manifest.json"] = json.dumps(manifest, indent=2)
    _write_tar(out, files)
    return manifest


def _write_tar(out: Path, files: dict[str, str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"support-bundle/{name}")
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    os.chmod(out, 0o600)
