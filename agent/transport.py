"""HTTP/1.1 for the agent on the standard library's `http.client`: keep-alive, bounded timeouts.

The agent makes a handful of sequential requests per client (one client per loop), so
one persistent connection per client is all it needs. `http.client` is loaded anyway
(the health server's `http.server` imports it): using it costs no import at all, where
httpx brought httpcore, h11, anyio and, with kitctl's CLI dependencies installed, its own
command line (click, rich, pygments).
"""

from __future__ import annotations

import functools
import http.client
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson


class TransportError(Exception):
    """No usable answer: the connection failed or broke (`kind` "connect") or took too long ("timeout")."""

    kind = "connect"


class Timeout(TransportError):
    kind = "timeout"


class TooLarge(TransportError):
    kind = "malformed"


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: http.client.HTTPMessage  # case-insensitive .get()
    content: bytes

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return orjson.loads(self.content)


class HttpClient:
    """Requests to one origin over one keep-alive connection (not shared between threads)."""

    def __init__(self, base_url: str, timeout: float, connect_timeout: float | None = None,
                 headers: dict[str, str] | None = None, max_body: int = 32 * 1024 * 1024) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = url.scheme == "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = min(timeout, connect_timeout or timeout)
        self.headers = dict(headers or {})
        self.max_body = max_body
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, content: bytes | None = None) -> Response:
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        sent_headers = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.request(method, target, body=content, headers=sent_headers)
                return self._read(conn.getresponse())
            except TimeoutError as exc:
                self.close()
                raise Timeout(type(exc).__name__) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 1:  # the server closed an idle keep-alive connection: once more
                    continue
                raise TransportError(type(exc).__name__) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        if self._conn is not None:
            return self._conn, True
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.connect_timeout,
                                               context=tls_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise Timeout(type(exc).__name__) from None
        except OSError as exc:
            conn.close()
            raise TransportError(type(exc).__name__) from None
        assert conn.sock is not None
        conn.sock.settimeout(self.timeout)  # connect is bounded by its own, shorter timeout
        self._conn = conn
        return conn, False

    def _read(self, resp: http.client.HTTPResponse) -> Response:
        length = resp.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            self.close()
            raise TooLarge("answer too large")
        body = resp.read(self.max_body + 1)
        if len(body) > self.max_body:
            self.close()
            raise TooLarge("answer too large")
        if resp.will_close:
            self.close()
        return Response(resp.status, resp.headers, body)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system's trust store (SSL_CERT_FILE / SSL_CERT_DIR honoured), built once for every client."""
    return ssl.create_default_context()
