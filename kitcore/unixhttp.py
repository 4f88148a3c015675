"""HTTP/1.1 over a unix socket, on the standard library alone: how the kit reads the Docker engine's API.

The CLI's no-op check of `kitctl up` (`kitctl.deploy.engine_socket`) and the
agent's container probe (`agent.stats`) each need a few requests to the local
engine; docker-py would cost them about 0.3 s of import, `http.client` costs
nothing they do not load anyway. Failures surface as `OSError` or
`http.client.HTTPException`; each caller turns them into its own error.
"""

from __future__ import annotations

import http.client
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """An `http.client` connection whose transport is the unix socket at `path`."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class UnixHTTPClient:
    """Requests over one keep-alive connection to a unix socket (not shared between threads)."""

    def __init__(self, path: str, timeout: float) -> None:
        self._conn = UnixHTTPConnection(path, timeout)

    def __enter__(self) -> UnixHTTPClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; the whole answer is read so the connection can be reused."""
        self._conn.request(method, target, body, headers or {})
        response = self._conn.getresponse()
        return response.status, response.read()

    def head(self, target: str) -> tuple[int, dict[str, str]]:
        """(status, headers) of a HEAD: some answers are all in the headers (the engine's path stat)."""
        self._conn.request("HEAD", target)
        response = self._conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())

    def close(self) -> None:
        self._conn.close()


def get(path: str, target: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """(status, body) of one GET on the socket at `path`, the connection closed after."""
    with UnixHTTPClient(path, timeout) as client:
        return client.request("GET", target)
