"""An HTTP client that sends an idempotent request again when the server dropped it unanswered, as a browser does.

A server closes a keep-alive connection it has kept idle for a while (uvicorn: after 5 s); a client that sends
on it at that moment gets no answer (httpx: `RemoteProtocolError: Server disconnected without sending a
response`). Browsers send such a request again on a fresh connection when resending cannot change anything
(an idempotent method); so do these clients, a bounded number of times, and then fail naming the server
that dropped it. Requests that are not idempotent (POST) are never sent again.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)  # closed, or reset, before any answer came
ATTEMPTS = 3


class ServerDropped(httpx.TransportError):
    """The named server dropped a request every time it was sent (or once, for a request not sent again)."""


class ResendingTransport(httpx.BaseTransport):
    """httpx's own transport, sending an idempotent request again after a dropped connection (bounded)."""

    def __init__(self, server: str, attempts: int = ATTEMPTS, pause: float = 0.1, verify: bool = True) -> None:
        self.server = server
        self.attempts = attempts
        self.pause = pause
        self.resent = 0  # how many times a request went again (a figure for the test's report)
        self._inner = httpx.HTTPTransport(verify=verify)  # verify=False: a local site's self-signed certificate

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        tries = self.attempts if request.method in IDEMPOTENT else 1
        for attempt in range(1, tries + 1):
            try:
                return self._inner.handle_request(request)
            except DROPPED as exc:
                if attempt == tries:
                    raise ServerDropped(self._said(request, attempt, exc), request=request) from exc
                self.resent += 1
                time.sleep(self.pause * attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _said(self, request: httpx.Request, attempts: int, exc: Exception) -> str:
        where = f"{request.url.host}:{request.url.port}"
        sent = f"{attempts} times" if attempts > 1 else "once (not idempotent: not sent again)"
        return f"{self.server} at {where} dropped {request.method} {request.url.path} {sent}: {exc}"

    def close(self) -> None:
        self._inner.close()


def client(server: str, base_url: str = "", verify: bool = True, **options: Any) -> httpx.Client:
    """An httpx client whose dropped idempotent requests go again (see the module docstring); `server` names the
    server in the error when they never get an answer."""
    return httpx.Client(base_url=base_url, transport=ResendingTransport(server, verify=verify), **options)
