"""The agent's small HTTP server: `/metrics` for Prometheus, `/healthz` and `/readyz` for the stack.

One asyncio event loop on one thread serves every connection, so a client
that sends half a request holds a socket, never a thread. Each connection
gets `HEAD_TIMEOUT` seconds to send its request head (at most
`MAX_HEAD_BYTES`), its answer is written within `WRITE_TIMEOUT`, and at most
`MAX_CONNECTIONS` are open at once: when full, the oldest connection still
waiting for its head is dropped to make room (so half-sent requests cannot
keep Prometheus out), and if none is waiting, the newcomer is.
Requests carry no body here: one that declares one is answered 413 unread.
With a token, `/metrics` asks for `Authorization: Bearer <token>`; the
probes stay open because the stack's healthcheck calls them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import threading
from typing import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent.metrics import AgentMetrics
from kitcore.errorbody import error_body

MAX_CONNECTIONS = 64
MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
Answer = tuple[int, bytes, str, dict[str, str]]  # status, body, content type, extra headers
REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
           431: "Request Header Fields Too Large", 400: "Bad Request", 503: "Service Unavailable"}


class HealthServer:
    """Serves on a thread of its own; `ready()` says whether the agent can do its work (database reachable)."""

    def __init__(self, bind: str, port: int, metrics: AgentMetrics, ready: Callable[[], tuple[bool, str]],
                 token: str | None = None, max_connections: int = MAX_CONNECTIONS,
                 head_timeout: float = HEAD_TIMEOUT) -> None:
        self.metrics, self.ready, self.token = metrics, ready, token
        self.max_connections, self.head_timeout = max_connections, head_timeout
        self.open_connections = 0
        self.waiting: dict[asyncio.StreamWriter, None] = {}  # connections still sending their head, oldest first
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, port))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.loop = asyncio.new_event_loop()
        self._stopped = asyncio.Event()
        self.thread = threading.Thread(target=self._run, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stopped.set)
            self.thread.join(timeout=10)
        self.sock.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._connection, sock=self.sock, limit=MAX_HEAD_BYTES)
        async with server:
            await self._stopped.wait()
        await _cancel_the_rest()  # connections still open: closed now, while the loop can still close them

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            if not self.waiting:
                writer.transport.abort()  # every slot is answering: shed the newcomer
                return
            oldest = next(iter(self.waiting))
            del self.waiting[oldest]
            oldest.transport.abort()
        self.open_connections += 1
        self.waiting[writer] = None
        try:
            status, body, ctype, headers = await self._answer(reader)
            self.waiting.pop(writer, None)
            if status:
                await asyncio.wait_for(_write(writer, status, body, ctype, headers), WRITE_TIMEOUT)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self.waiting.pop(writer, None)
            self.open_connections -= 1
            writer.transport.abort()  # closed after writing, or given up on: never left open

    async def _answer(self, reader: asyncio.StreamReader) -> Answer:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
        except asyncio.LimitOverrunError:
            return _error(431, "headers_too_large", "request head is larger than 8 KiB")
        except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            return 0, b"", "", {}  # gone, or too slow: close without a word
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _error(400, "invalid_request", "not an HTTP/1.x request")
        method, target = parts[0], parts[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            return _error(413, "too_large", "requests to the agent carry no body")
        if method != "GET":
            return _error(405, "method_not_allowed", "these endpoints answer GET only", {"Allow": "GET"})
        return await self._route(target.split("?", 1)[0], headers)

    async def _route(self, path: str, headers: dict[str, str]) -> Answer:
        if path == "/metrics":
            if self.token and not _bearer_matches(headers.get("authorization", ""), self.token):
                return _error(401, "unauthorized", "send Authorization: Bearer <agent token>",
                              {"WWW-Authenticate": "Bearer"})
            return 200, self.metrics.render(), CONTENT_TYPE_LATEST, {}
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/readyz":
            ok, why = self.ready()
            if ok:
                return _json(200, {"status": "ready", "detail": why})
            return _json(503, error_body("not_ready", why or "not ready", status="not ready"))
        return _error(404, "not_found", "try /metrics, /healthz or /readyz")


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, sent = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def _json(status: int, doc: dict, headers: dict[str, str] | None = None) -> Answer:
    return status, json.dumps(doc).encode(), "application/json", headers or {}


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Answer:
    return _json(status, error_body(code, detail), headers)


async def _write(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nServer: kitctl-agent\r\nContent-Type: {ctype}\r\n{extra}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    writer.write(head.encode("latin-1") + body)
    writer.close()  # flushes what is buffered, then closes
    await writer.wait_closed()


async def _cancel_the_rest() -> None:
    """Cancel every other task of this loop and wait for their cleanup."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
