"""HEAD answered as GET without a body, for every page (monitors and link checkers send HEAD).

FastAPI routes declared with `@router.get` answer HEAD with 405. This ASGI
middleware hands the app a GET in a copy of the scope and passes on the
response's status and headers (Content-Length included, as GET would send)
with an empty body. The server still sees its own scope's HEAD, so it sends
no body either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kitcore.bodylimit import ASGIApp, Message, Receive, Send


class HeadAsGet:
    def __init__(self, app: "ASGIApp") -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: "Message") -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):  # the body's end: one empty chunk instead of it all
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, without_body)
