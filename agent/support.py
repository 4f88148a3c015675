"""The support bundle the agent sends when HQ asks (a signed `support_bundle` command).

It holds what the agent can see from inside the stack — versions, its own /metrics, the
site state, recent audit entries, its health summary and last log lines — redacted with
`kitcore.redact` against the site's own secrets (licence, site key, database URL) before
it leaves the process. `kitctl support-bundle` on the host gathers more (every service's
logs, doctor) with the same redaction.
"""

from __future__ import annotations

import io
import json
import platform
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import select

from kitcore.redact import Redactor

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from agent.metrics import AgentMetrics

AUDIT_ENTRIES = 100


def site_secrets(paths: Iterable[Path | None], database_url: str, extra: Iterable[str] = ()) -> list[str]:
    """The values a bundle must never carry: secret files' contents, the database URL and its password."""
    from urllib.parse import urlsplit

    found = [database_url, *extra]
    password = urlsplit(database_url).password if "://" in database_url else None
    if password:
        found.append(password)
    for path in paths:
        if path is not None and path.is_file():
            found.append(path.read_text(encoding="utf-8", errors="replace"))
    return found


def build(engine: "Engine", metrics: "AgentMetrics", health: dict[str, Any], log_lines: Iterable[str],
          secrets: Iterable[str]) -> bytes:
    """The redacted bundle as gzip bytes (built in memory: nothing unredacted touches a disk)."""
    from kitcore import __version__
    from sitedb.tables import audit_log, site_state

    redactor = Redactor(secrets)
    with engine.connect() as conn:
        state = conn.execute(select(site_state)).mappings().first()
        audit = [dict(r) for r in conn.execute(select(audit_log).order_by(audit_log.c.id.desc())
                                               .limit(AUDIT_ENTRIES)).mappings()]
    state_doc = {k: v for k, v in dict(state or {}).items() if k != "licence_token"}
    files = {
        "versions.json": {"agent": __version__, "python": platform.python_version(),
                          "database": engine.dialect.name},
        "site-state.json": state_doc, "audit.json": audit, "health.json": health,
    }
    texts = {name: json.dumps(redactor.data(doc), indent=2, ensure_ascii=False, default=str)
             for name, doc in files.items()}
    texts["metrics/agent.prom"] = redactor.text(metrics.render().decode())
    texts["logs/agent.log"] = redactor.text("\n".join(log_lines))
    texts["manifest.json"] = json.dumps({"created_at": int(time.time()), "from": "agent", "files": sorted(texts)})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in sorted(texts.items()):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"support-bundle/{name}")
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()
