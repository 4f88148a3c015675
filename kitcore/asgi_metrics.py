"""One ASGI middleware that times every HTTP request and hands (route, method, status, seconds) on.

HQ and the storefront each count into their own metrics (`kithq_`, `kitshop_`); what a request
is labelled with is decided here once: the matched route's *template* (never the path with
its ids), the method from a small set, the status code.
"""

from __future__ import annotations

import time
from typing import Any, Callable

Record = Callable[[str, str, str, float], None]
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"})


def route_of(scope: dict[str, Any], known_paths: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> str:
    """The matched route's template; a known raw path, `<prefix>*`, or `unmatched` for the rest."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    path = str(scope.get("path", ""))
    if path in known_paths:
        return path
    for prefix in prefixes:
        if path.startswith(prefix):
            return prefix + "*"
    return "unmatched"


class RequestMetrics:
    """ASGI middleware: `record(route, method, status, seconds)` after every HTTP request."""

    def __init__(self, app: Any, record: Record, label_route: Callable[[dict[str, Any]], str] = route_of) -> None:
        self.app = app
        self.record = record
        self.label_route = label_route

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope.get("method", "GET")
            self.record(self.label_route(scope), method if method in METHODS else "other", str(status),
                        time.perf_counter() - started)
