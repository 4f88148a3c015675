"""A request-size limit in front of a whole ASGI app: 413 before parsing, before auth.

Frameworks read a body whole when asked for it (`await request.body()`, a
form, a JSON model), and they are asked before the caller is known to be
anyone. This middleware sits outermost: a declared `Content-Length` over the
limit is answered 413 without reading a byte of the body; a body sent without
one (chunked) is read up to the limit before the app sees it, and refused
413 as soon as it passes (the server's HTTP parser already holds a declared
length to what was declared).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from kitcore.errorbody import error_body

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    Message = dict[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over `default` bytes (or the limit of the longest matching path prefix)."""

    def __init__(self, app: "ASGIApp", default: int, per_path: "Mapping[str, int] | None" = None) -> None:
        self.app = app
        self.default = default
        self.per_path = sorted((per_path or {}).items(), key=lambda kv: -len(kv[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.per_path:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.default

    async def __call__(self, scope: dict[str, Any], receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and (declared < 0 or declared > limit):
            await _refuse(send, limit, declared < 0)
            return
        if declared is None and _has_body(scope):
            await self._prebuffered(scope, receive, send, limit)
            return
        await self.app(scope, receive, send)

    async def _prebuffered(self, scope: dict[str, Any], receive: "Receive", send: "Send", limit: int) -> None:
        """A body of unknown length (chunked) is read up to the limit before the app sees any of it."""
        messages: list["Message"] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > limit:
                await _refuse(send, limit, False)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> "Message":
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _has_body(scope: dict[str, Any]) -> bool:
    return any(name == b"transfer-encoding" for name, _ in scope.get("headers", ()))


def _content_length(scope: dict[str, Any]) -> int | None:
    """The declared length; -1 when it is not a plain decimal number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() and len(value) < 19 else -1
    return None


async def _refuse(send: "Send", limit: int, malformed: bool) -> None:
    status, code, detail = ((400, "invalid_request", "Content-Length is not a number") if malformed else
                            (413, "too_large", f"request body is larger than {limit} bytes"))
    body = orjson.dumps(error_body(code, detail))
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
