"""tests/support/resend.py: a dropped idempotent request goes again (bounded), a POST never does, and the
error names the server (the paid-checkout load test's buyers use it: tests/agent/paid_stack.py)."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from tests.support.resend import ATTEMPTS, ServerDropped, client

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


@contextmanager
def dropping_server(drops: int) -> Iterator[tuple[str, list[str]]]:
    """A server on loopback that closes its first `drops` requests' connections unanswered, then answers
    "ok"; the request lines it read, in order."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                seen.append(head.split(b"\r\n")[0].decode())
                if len(seen) > drops:
                    conn.sendall(ANSWER)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_dropped_get_is_sent_again_and_answered():
    with dropping_server(drops=ATTEMPTS - 1) as (url, seen), client("storefront", url, timeout=5) as http:
        got = http.get("/order/o-1/status")
    assert got.text == "ok" and seen == ["GET /order/o-1/status HTTP/1.1"] * ATTEMPTS
    assert http._transport.resent == ATTEMPTS - 1


def test_a_get_dropped_every_time_fails_naming_the_server_after_bounded_attempts():
    with dropping_server(drops=100) as (url, seen), client("epay sandbox", url, timeout=5) as http:
        with pytest.raises(ServerDropped) as caught:
            http.get("/submit.php")
    port = url.rsplit(":", 1)[1]
    assert str(caught.value).startswith(f"epay sandbox at 127.0.0.1:{port} dropped GET /submit.php {ATTEMPTS} times")
    assert len(seen) == ATTEMPTS and isinstance(caught.value, httpx.TransportError)


def test_a_dropped_post_is_not_sent_again():
    with dropping_server(drops=1) as (url, seen), client("storefront", url, timeout=5) as http:
        with pytest.raises(ServerDropped, match="storefront at .* dropped POST /p/x/checkout once"):
            http.post("/p/x/checkout", data={"nonce": "n"})
    assert seen == ["POST /p/x/checkout HTTP/1.1"]
