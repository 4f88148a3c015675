"""Security headers on every response (a plain ASGI middleware: cheap on the hot path)."""

from __future__ import annotations

from typing import Any

from kitcore.headers import AddHeaders, page_headers

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
BASE_HEADERS = page_headers(CSP) + [
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders(AddHeaders):
    """The shop's headers on every response; HSTS when the request came over HTTPS."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, BASE_HEADERS, https_headers=[HSTS])
