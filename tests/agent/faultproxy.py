"""A small fault-injecting HTTP proxy in front of the real HQ (tests only).

Modes: `pass` (forward), `down` (drop the connection without an answer),
`error500`, `timeout` (hold the request past the client's timeout), and
`malformed` (200 with a body that is not JSON). `only` limits a fault to
paths starting with a prefix; `delay` slows every forwarded request.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.only: str | None = None
        self.delay = 0.0
        self.hold = 5.0
        self.requests = 0
        self.faults = 0
        self.lock = threading.Lock()
        self.client = httpx.Client(base_url=self.upstream, timeout=30)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mode = "pass"
        self.httpd.shutdown()
        self.httpd.server_close()
        self.client.close()

    def set(self, mode: str, only: str | None = None) -> None:
        self.mode, self.only = mode, only

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.requests += 1
                mode = proxy.mode if proxy.only is None or self.path.startswith(proxy.only) else "pass"
                if mode != "pass":
                    with proxy.lock:
                        proxy.faults += 1
                if mode == "down":
                    self.close_connection = True
                    self.connection.close()
                    return
                if mode == "timeout":
                    time.sleep(proxy.hold)
                    self.close_connection = True
                    return
                if mode == "error500":
                    return self._send(500, b'{"error":"internal","detail":"injected fault"}', {})
                if mode == "malformed":
                    return self._send(200, b'{"items": [ this is not json', {})
                if proxy.delay:
                    time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    resp = proxy.client.request(self.command, self.path, content=body, headers=headers)
                except httpx.HTTPError:
                    self.close_connection = True
                    return
                keep = {k: v for k, v in resp.headers.items()
                        if k.lower() in ("content-type", "etag", "idempotent-replayed")}
                self._send(resp.status_code, resp.content, keep)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        return Handler
