"""Security headers for the fleet page (a plain ASGI middleware; the API's JSON needs none of them)."""

from __future__ import annotations

from typing import Any

from kitcore.headers import AddHeaders, page_headers

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = page_headers(CSP)


def is_page(path: str) -> bool:
    return path in ("/", "/fleet", "/apply") or path.startswith(("/fleet/", "/apply/"))


class FleetHeaders(AddHeaders):
    """Adds the CSP and frame protection to every response under /fleet and /apply (and the / redirect)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, HEADERS, applies=is_page)
