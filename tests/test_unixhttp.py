"""The kernel's HTTP-over-unix-socket client, against a real server on a unix socket."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from kitcore import unixhttp


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the engine answers

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = f"{self.command} {self.path} {self.rfile.read(length).decode()}".encode()
        self.send_response(200 if self.path != "/missing" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def address_string(self) -> str:
        return "unix"

    def log_message(self, *args: object) -> None:
        return


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "api.sock")
    server = _Server(path, _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()


def test_one_get_reads_status_and_body(sock: str) -> None:
    assert unixhttp.get(sock, "/v1/x?a=1") == (200, b"GET /v1/x?a=1 ")
    assert unixhttp.get(sock, "/missing")[0] == 404


def test_the_client_keeps_one_connection_for_several_requests(sock: str) -> None:
    with unixhttp.UnixHTTPClient(sock, timeout=2) as client:
        assert client.request("POST", "/exec", b'{"a":1}', {"Content-Type": "application/json"}) == \
            (200, b'POST /exec {"a":1}')
        first = client._conn.sock
        assert client.request("GET", "/json") == (200, b"GET /json ")
        assert client._conn.sock is first


def test_an_absent_socket_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        unixhttp.get(str(tmp_path / "none.sock"), "/")
