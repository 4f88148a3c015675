"""The shop while its database is unreachable: a branded 503 "under maintenance" page at once, never a hang or a 500.

Connections are bounded (sitedb.engine: ~1 s to connect, name resolution included), so a
request that needs the database fails fast; this turns that failure into a page that
says what happened and what to do. A checkout that failed this way wrote nothing (its
transaction did not commit) or, if the connection broke during COMMIT, wrote the order
under the id its form derives: sending the same form again finds that order instead
of making a second one, so "try again" is always safe.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from storefront.state import database_down
from storefront.web import render

__all__ = ["database_down", "maintenance_page"]

log = logging.getLogger("storefront.outage")
RETRY_AFTER_SECONDS = 5


def is_checkout(request: Request) -> bool:
    return request.method == "POST" and request.url.path.endswith("/checkout")


def maintenance_page(request: Request, exc: BaseException) -> Response:
    """503 with Retry-After, rendered without the database, in the buyer's language."""
    log.warning("database unreachable on %s %s: %s", request.method, request.url.path,
                str(getattr(exc, "orig", exc) or type(exc).__name__).splitlines()[0][:160])
    retry_url = "/" + request.url.path.lstrip("/") + (f"?{request.url.query}" if request.url.query else "")
    response = render(request, "maintenance.html", {"checkout": is_checkout(request), "retry_url": retry_url},
                      status=503, private=True, offline=True)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
