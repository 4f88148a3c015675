"""The agent's small HTTP server: `/metrics` for Prometheus, `/healthz` and `/readyz` for the stack."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agent.metrics import AgentMetrics
from kitcore.errorbody import error_body


class HealthServer:
    """Serves on a thread; `ready()` says whether the agent can do its work (database reachable)."""

    def __init__(self, bind: str, port: int, metrics: AgentMetrics, ready: Callable[[], tuple[bool, str]]) -> None:
        handler = _handler(metrics, ready)
        self.httpd = ThreadingHTTPServer((bind, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(metrics: AgentMetrics, ready: Callable[[], tuple[bool, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "kitctl-agent"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/readyz":
                ok, why = ready()
                if ok:
                    self._json(200, {"status": "ready", "detail": why})
                else:
                    self._json(503, error_body("not_ready", why or "not ready", status="not ready"))
            else:
                self._json(404, error_body("not_found", "try /metrics, /healthz or /readyz"))

        def _not_allowed(self) -> None:
            self._json(405, error_body("method_not_allowed", "these endpoints answer GET only"),
                       {"Allow": "GET"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815 (http.server's naming)

        def _json(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(doc).encode(), "application/json", headers)

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not log lines
            return

    return Handler
