"""The agent's metrics server under slow and hostile clients.

It used a thread per connection and no timeouts: 300 half-sent requests held
302 threads, for as long as the clients liked. Now one event loop serves all,
a half-sent request is dropped after the head timeout (or sooner, when the
server is full and a new client arrives), and Prometheus still gets in.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import httpx
import pytest

from agent.health import HealthServer
from agent.metrics import AgentMetrics

HALF_SENT = 300
HEAD_TIMEOUT = 2.0


@pytest.fixture
def threads_before() -> int:
    """Threads other tests of the run left behind are not the server's."""
    return threading.active_count()


@pytest.fixture
def server(threads_before: int) -> Iterator[HealthServer]:
    srv = HealthServer("127.0.0.1", 0, AgentMetrics(), lambda: (True, "ok"), head_timeout=HEAD_TIMEOUT)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def half_sent(server: HealthServer) -> Iterator[list[socket.socket]]:
    """HALF_SENT connections that each sent part of a request head and then nothing."""
    socks = []
    try:
        for _ in range(HALF_SENT):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: agent\r\n")
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def test_half_sent_requests_hold_no_threads_and_prometheus_still_gets_in(threads_before, server, half_sent):
    time.sleep(0.3)
    added = threading.active_count() - threads_before
    assert added < 5, f"{added} threads for {HALF_SENT} slow clients"
    started = time.monotonic()
    resp = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
    assert resp.status_code == 200 and "kitagent_up" in resp.text
    assert time.monotonic() - started < 2
    assert server.open_connections <= 64


def test_half_sent_requests_are_closed_after_the_head_timeout(server, half_sent):
    deadline = time.monotonic() + HEAD_TIMEOUT + 3
    for s in half_sent[-20:]:  # the newest ones were not shed to make room: they wait out the timeout
        s.settimeout(max(0.1, deadline - time.monotonic()))
        assert s.recv(1) == b"", "the server kept a half-sent request open past its head timeout"


def test_a_body_is_refused_with_413_unread(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /metrics HTTP/1.1\r\nHost: agent\r\nContent-Length: 67108864\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 413 ")


def test_an_oversized_head_is_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 20_000 + b"\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 431 ")


def test_stopping_with_a_half_sent_request_open_closes_it_and_leaves_nothing_pending(threads_before) -> None:
    """Stopping used to close the loop under the connection's handler: when that handler was collected later
    it tried to close its connection on the closed loop ("Event loop is closed", reported in another test)."""
    import gc
    import sys

    srv = HealthServer("127.0.0.1", 0, AgentMetrics(), lambda: (True, "ok"), head_timeout=30)
    srv.start()
    client = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    client.sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(0.3)  # the server is waiting for the rest of the head
    unraisable: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2
        assert client.recv(1) == b""  # closed by the server, not left open
        del srv
        gc.collect()
    finally:
        sys.unraisablehook = hook
        client.close()
    assert unraisable == []
