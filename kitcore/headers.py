"""Response headers added by a plain ASGI middleware (cheap on the hot path): CSP, frame protection, HSTS."""

from __future__ import annotations

from typing import Any, Callable, Sequence

Header = tuple[bytes, bytes]


def page_headers(csp: str) -> list[Header]:
    """The headers every HTML page of the kit carries: its CSP, no framing, no sniffing, no cross-site referrer."""
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class AddHeaders:
    """Adds `headers` (and `https_headers` over HTTPS) to responses whose path `applies`, unless already set."""

    def __init__(self, app: Any, headers: Sequence[Header], https_headers: Sequence[Header] = (),
                 applies: Callable[[str], bool] = lambda path: True) -> None:
        self.app, self.headers, self.https_headers, self.applies = app, list(headers), list(https_headers), applies

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        extra = self.headers + (self.https_headers if scope.get("scheme") == "https" else [])

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                message["headers"] = headers + [h for h in extra if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)
