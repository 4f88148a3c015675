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
import io
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from kitcore import net


class TransportError(Exception):
    """No usable answer: the connection failed or broke (`kind` "connect") or took too long ("timeout")."""

    kind = "connect"


class Timeout(TransportError):
    kind = "timeout"


class NotConnected(TransportError):
    """No connection could be opened at all (nothing listens, the name does not resolve, no route):
    unlike a connection that broke mid-request, no proxy cutting held requests looks like this."""


class ConnectTimeout(Timeout, NotConnected):
    """Opening the connection took longer than the connect deadline (kind "timeout", never opened)."""


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
    """Requests to one origin over one keep-alive connection (not shared between threads).

    Two bounds hold for every request: opening a connection (resolving the name
    included) takes at most `connect_timeout`, and the whole request — sending,
    waiting, reading the last byte — at most `timeout`, however slowly the peer
    trickles its answer.
    """

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
        self.connect_timeout = min(timeout, connect_timeout or net.CONNECT_DEADLINE)
        self.headers = dict(headers or {})
        self.max_body = max_body
        self._conn: http.client.HTTPConnection | None = None
        self._aborted = False  # set by abort(): at shutdown, no request (and no retry) starts any more

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, content: bytes | None = None) -> Response:
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        sent_headers = {**self.headers, **(headers or {})}
        deadline = time.monotonic() + self.timeout
        for attempt in (1, 2):
            if self._aborted:
                raise TransportError("aborted")
            conn, reused = self._connection(deadline)
            assert isinstance(conn.sock, DeadlineSocket)
            conn.sock.deadline = deadline
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

    def abort(self) -> None:
        """End a request in flight from another thread (at shutdown): its read fails at once, and it is not
        retried on a new connection (nor is any later request made)."""
        self._aborted = True
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _connection(self, deadline: float) -> tuple[http.client.HTTPConnection, bool]:
        if self._conn is not None:
            return self._conn, True
        try:
            sock = net.connect(self.host, self.port, min(self.connect_timeout, net.remaining(deadline)))
        except TimeoutError as exc:
            raise ConnectTimeout(str(exc) or type(exc).__name__) from None
        except OSError as exc:
            raise NotConnected(type(exc).__name__) from None
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, context=tls_context())
            try:
                sock.settimeout(net.remaining(deadline) or 0.001)
                sock = tls_context().wrap_socket(sock, server_hostname=self.host)
            except TimeoutError:
                sock.close()
                raise Timeout("TLS handshake") from None
            except OSError as exc:
                sock.close()
                raise TransportError(type(exc).__name__) from None
        else:
            conn = http.client.HTTPConnection(self.host, self.port)
        conn.sock = DeadlineSocket(sock)
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


class DeadlineSocket:
    """A socket whose every send and receive gets only the time left until `deadline`.

    `http.client` reads through `makefile()`; a per-read timeout alone lets a peer that
    sends one byte a second hold a request for ever. Here each read waits at most the
    time remaining, so the request as a whole ends on time (TimeoutError).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline = time.monotonic()
        self._readers = 0  # open makefile() readers: the socket outlives close() until they end
        self._close_asked = False

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(left)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *_args: Any, **_kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        """Close once no reader is left, as `socket.socket` does.

        `http.client` closes the connection as soon as an answer says `Connection: close`
        and leaves the body to the response's reader; closing the socket then would cut
        off a body that had not arrived yet.
        """
        self._close_asked = True
        if self._readers <= 0:
            self._sock.close()

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._close_asked and self._readers <= 0:
            self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._sock.reader_closed()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system's trust store (SSL_CERT_FILE / SSL_CERT_DIR honoured), built once for every client."""
    return ssl.create_default_context()
