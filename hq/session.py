"""Operator sessions for the fleet page: an HMAC-signed cookie with a CSRF token inside.

The cookie holds the operator name, a random CSRF token and an expiry,
signed with a 32-byte key in `<hq_dir>/session.key` (0600). Forms carry the
CSRF token; a POST whose token differs from the session's is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from kitcore.licence.keys import write_private

COOKIE = "hq_session"


@dataclass(frozen=True)
class OperatorSession:
    operator: str
    csrf: str
    expires: int


class SessionSigner:
    def __init__(self, hq_dir: Path) -> None:
        path = Path(hq_dir) / "session.key"
        if not path.exists():
            write_private(path, base64.b64encode(os.urandom(32)))
        self._key = base64.b64decode(path.read_bytes().strip())

    def _mac(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode().rstrip("=")

    def issue(self, operator: str, hours: int) -> tuple[str, OperatorSession]:
        sess = OperatorSession(operator, secrets.token_urlsafe(24), int(time.time()) + hours * 3600)
        body = base64.urlsafe_b64encode(json.dumps(sess.__dict__).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body.encode())}", sess

    def read(self, cookie: str | None) -> OperatorSession | None:
        if not cookie or "." not in cookie or len(cookie) > 1000:
            return None
        body, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            sess = OperatorSession(str(data["operator"]), str(data["csrf"]), int(data["expires"]))
        except (ValueError, KeyError, TypeError):
            return None
        return sess if sess.expires > time.time() else None
