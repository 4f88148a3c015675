"""The site requests every agent sends all the time, served straight from the ASGI entry.

`POST /v1/heartbeat` (every site, every interval), `GET /v1/commands/wait` (the
push channel: every site again after each hold, and all at once when a command goes
to the whole fleet) and a well-formed `POST /v1/orders` (each order a buyer places)
skip FastAPI's routing and dependency machinery, which cost more than the rest of
the heartbeat and the wait, and about as much as deciding an order. The FastAPI
routes (`hq.api_site`) still document them in the OpenAPI schema and serve them when
the app is mounted without this middleware (and the orders the fast path does not
take); both call the same handler, and the answers — errors included — are the same.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from starlette.requests import Request

from hq import heartbeat_api, orders_api, push_api
from hq.errors import error_response, known_error_response

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("hq")

Handler = Callable[[Request], Awaitable["Response | None"]]  # None: not the common form, FastAPI's route answers
HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", heartbeat_api.PATH): heartbeat_api.handle,
    ("GET", push_api.PATH): push_api.handle,
    ("POST", orders_api.PATH): orders_api.handle,
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
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            response = known_error_response(exc)
            if response is None:
                log.exception("unhandled error")
                response = error_response(500, "internal", "internal error; see HQ's log")
        if response is None:  # not the common form: FastAPI's route answers it, from the body the handler read
            await self.app(scope, replaying(await request.body(), receive), send)
            return
        await response(scope, receive, send)


def replaying(body: bytes, receive: "Receive") -> "Receive":
    """`receive` for an app downstream that gives it the body already read, then passes on (a disconnect)."""
    sent = False

    async def receive_again() -> "Message":
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again
