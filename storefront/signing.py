"""Small HMAC-signed values for cookies and forms (no server-side session store needed)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs JSON payloads with an expiry, for one purpose each (a session token is no CSRF token)."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    def mac(self, data: bytes) -> str:
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())

    def dumps(self, payload: Any, max_age: int) -> str:
        body = _b64(json.dumps({"p": payload, "e": int(time.time()) + max_age}, separators=(",", ":")).encode())
        return f"{body}.{self.mac(body.encode())}"

    def loads(self, token: str | None) -> Any | None:
        """The payload, or None when the token is missing, forged, malformed or expired."""
        if not token or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, self.mac(body.encode())):
            return None
        try:
            data = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or int(data.get("e", 0)) < time.time():
            return None
        return data.get("p")
