"""Redaction for support bundles: no secret, token, password or buyer contact leaves the host.

Two nets, both applied to every text that goes into a bundle:
- the known secrets: the exact values of the site's secret files, the licence token, the
  database password (given by the caller, who knows where they live), replaced wherever
  they appear, whole or base64-encoded;
- the shapes of secrets nobody listed: JWS/JWT tokens, `Bearer …`, passwords in URLs,
  `password=` / `"secret": …` style fields, e-mail addresses and mobile numbers (a buyer's
  contact), and PEM private keys.
The agent (HQ asks it for a bundle) and `kitctl support-bundle` share this code.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Iterable

MASK = "[redacted]"
SENSITIVE_KEYS = re.compile(r"(pass(word)?|secret|token|key|credential|contact|email|phone|account|buyer|auth"
                            r"|cookie|session|licence_token|database_url|dsn)", re.IGNORECASE)
_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWS / JWT
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(://[^:/\s@]+:)[^@\s/]+(@)"),  # user:password@ in URLs
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)"),
    re.compile(r"(?i)(\"(?:[a-z_]*(?:password|secret|token|contact|email|phone|account)[a-z_]*)\"\s*:\s*)\"(?:[^\"\\]|\\.)*\""),
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),  # e-mail addresses
    re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d{9}(?!\d)"),  # mainland mobile numbers
]


class Redactor:
    """Masks the given secret values and anything shaped like a secret or a buyer's contact."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            s = secret.strip()
            if len(s) < 6:  # too short to find safely; the pattern net still applies
                continue
            values.add(s)
            values.add(base64.b64encode(s.encode()).decode().rstrip("="))
            values.add(base64.urlsafe_b64encode(s.encode()).decode().rstrip("="))
        self._known = sorted(values, key=len, reverse=True)  # longest first: a secret inside another

    def text(self, value: str) -> str:
        for secret in self._known:
            value = value.replace(secret, MASK)
        for pattern in _PATTERNS:
            value = pattern.sub(_replacement(pattern), value)
        return value

    def data(self, value: Any, key: str = "") -> Any:
        """A JSON-like value with sensitive keys masked and every string redacted."""
        if isinstance(value, dict):
            return {k: (MASK if SENSITIVE_KEYS.search(str(k)) and v not in (None, "", [], {}) and not
                        isinstance(v, (bool, int, float)) else self.data(v, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v, key) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def _replacement(pattern: re.Pattern[str]) -> Any:
    groups = pattern.groups
    if pattern.pattern.startswith("(?i)(://"):
        return lambda m: m.group(1) + MASK + m.group(2)
    if pattern.pattern.startswith("(?i)\\b(password"):
        return lambda m: m.group(1) + m.group(2) + MASK
    if pattern.pattern.startswith("(?i)(\\\"(?:"):
        return lambda m: m.group(1) + f'"{MASK}"'
    if groups and pattern.pattern.startswith("(?i)\\b(bearer"):
        return lambda m: m.group(1) + " " + MASK
    return lambda m: MASK
