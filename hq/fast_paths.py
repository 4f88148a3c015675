"""The site requests every agent sends all the time, served straight from the ASGI entry.

`POST /v1/heartbeat` (every site, every interval) and `GET /v1/commands/wait` (the
push channel: every site again after each hold, and all at once when a command goes
to the whole fleet) skip FastAPI's routing and dependency machinery, which cost
more than the rest of either request. The FastAPI routes (`hq.api_site`) still
document them in the OpenAPI schema and serve them when the app is mounted without
this middleware; both call the same handler, and the answers — errors included —
are the same.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from starlette.requests import Request

from hq import heartbeat_api, push_api
from hq.errors import ApiError, error_response

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("hq")

Handler = Callable[[Request], Awaitable["Response"]]
HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", heartbeat_api.PATH): heartbeat_api.handle,
    ("GET", push_api.PATH): push_api.handle,
}


class SiteFastPaths:
    """ASGI middleware: the requests in `HANDLERS` go to their handler directly; everything else passes on."""

    def __init__(self, app: "ASGIApp") -> None:
        self.app = app

    async def __call__(self, scope: "Scope", receive: "Receive", send: "Send") -> None:
        handler = HANDLERS.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except ApiError as exc:
            response = error_response(exc.status, exc.code, exc.detail, exc.headers)
        except Exception:
            log.exception("unhandled error")
            response = error_response(500, "internal", "internal error; see HQ's log")
        await response(scope, receive, send)
