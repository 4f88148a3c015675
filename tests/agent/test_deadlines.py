"""Every connection the agent opens has a connect deadline and every HQ request a total one (issues 15, 26)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.hq_client import HQClient, HQError
from agent.hqlink import HQLink
from agent.metrics import AgentMetrics
from agent.transport import HttpClient, NotConnected, Timeout, TransportError
from kitcore import net


class SlowDrip:
    """A local HTTP server that answers 200 and then one body byte every `every` seconds (bounded)."""

    def __init__(self, every: float = 0.3, body_bytes: int = 30) -> None:
        drip = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(body_bytes))
                self.end_headers()
                try:
                    for _ in range(body_bytes):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        if drip.stop.wait(every):
                            return
                except OSError:  # the client gave up: that is the point
                    return

        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "SlowDrip":
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class LateBody:
    """An HTTP/1.0 server (one answer a connection) whose body follows its headers a moment later."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.flush()
                time.sleep(0.05)
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_body_that_arrives_after_a_connection_close_answer_is_read_whole() -> None:
    """http.client hands a `Connection: close` answer's socket to its reader; closing it early lost the body."""
    server = LateBody()
    client = HttpClient(server.url, timeout=5.0)
    try:
        for _ in range(3):
            assert client.request("GET", "/healthz").content == b"ok"
    finally:
        client.close()
        server.close()


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from tests.support.slowdns import slow_dns as install

    return install(monkeypatch)


def test_a_slow_drip_answer_ends_at_the_request_deadline() -> None:
    with SlowDrip(every=0.3, body_bytes=30) as server:  # 9 s of body at one byte per 0.3 s
        client = HttpClient(server.url, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(Timeout):
            client.request("GET", "/v1/catalog")
        took = time.monotonic() - started
        client.close()
    assert 0.9 <= took < 1.4, took


def test_a_name_that_does_not_resolve_fails_within_the_connect_deadline(slow_dns: list[str]) -> None:
    client = HttpClient("http://hq.stopped.test:8600", timeout=10.0, connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(TransportError):
        client.request("GET", "/healthz")
    assert time.monotonic() - started < 1.3
    assert slow_dns == ["hq.stopped.test"]


def test_callers_share_a_fresh_lookup_instead_of_piling_up(slow_dns: list[str]) -> None:
    errors: list[float] = []

    def one() -> None:
        started = time.monotonic()
        with pytest.raises(net.ResolveError):
            net.resolve("db.stopped.test", 5432, 0.5)
        errors.append(time.monotonic() - started)

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(errors) == 10 and max(errors) < 0.8
    assert len(slow_dns) == 1  # ten callers, one lookup stuck in the resolver


def test_an_ip_address_needs_no_lookup(slow_dns: list[str]) -> None:
    assert net.resolve("127.0.0.1", 80) == ["127.0.0.1"]
    assert net.resolve("::1", 80) == ["::1"]
    assert slow_dns == []


def test_hq_unreachable_is_told_apart_from_hq_refusing(slow_dns: list[str]) -> None:
    metrics = AgentMetrics()
    link = HQLink(metrics)
    client = HQClient("http://hq.stopped.test:8600", "token", metrics, timeout=5, connect_timeout=0.5, link=link)
    with pytest.raises(HQError) as failed:
        client.heartbeat({})
    assert failed.value.kind == "connect" and link.state == "unreachable"
    assert metrics.hq_link.labels("unreachable")._value.get() == 1
    assert metrics.hq_link.labels("ok")._value.get() == 0
    assert 0 < metrics.hq_detection._value.get() < 0.8
    link.report("auth", 0.01)  # HQ answered 401: reachable, refusing
    assert link.state == "refused" and metrics.hq_link.labels("refused")._value.get() == 1
    link.report("conflict", 0.01)  # an answer about one order says nothing against the link
    assert link.state == "ok"


def test_the_prober_finds_hq_back_and_wakes_the_loops(slow_dns: list[str]) -> None:
    with SlowDrip(every=0.01, body_bytes=2) as server:  # answers /healthz at once
        metrics = AgentMetrics()
        link = HQLink(metrics, probe_interval=0.2)
        woken = threading.Event()
        link.on_back(woken.set)
        stop = threading.Event()
        prober = HttpClient(server.url, timeout=1.0)
        thread = threading.Thread(target=link.run_prober, args=(prober, stop), daemon=True)
        thread.start()
        try:
            link.report("connect", 0.3)
            assert woken.wait(2.0), "the prober did not see HQ answering"
            assert link.state == "ok" and metrics.hq_probes.labels("answered")._value.get() >= 1
        finally:
            stop.set()
            thread.join(3)


class CutsRequests:
    """A server that takes each connection and closes it unanswered (a proxy cutting held requests)."""

    def __init__(self) -> None:
        import socket

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._cut, daemon=True)
        self.thread.start()

    def _cut(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    def close(self) -> None:
        self.listener.close()


def _refused_url() -> str:
    from hq.testing import free_port

    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_a_connection_that_cannot_be_opened_is_told_apart_from_one_that_broke() -> None:
    with pytest.raises(NotConnected):
        HttpClient(_refused_url(), timeout=2.0).request("GET", "/healthz")
    server = CutsRequests()
    try:
        with pytest.raises(TransportError) as broke:
            HttpClient(server.url, timeout=2.0).request("GET", "/healthz")
        assert not isinstance(broke.value, NotConnected) and broke.value.kind == "connect"
    finally:
        server.close()


def test_a_client_hearing_only_unopened_connections_reports_a_refused_one_and_nothing_else() -> None:
    """The push channel's client: HQ gone (refused) makes the link unreachable; a cut long-poll or an
    answer does not move it either way."""
    link = HQLink(AgentMetrics())
    server = CutsRequests()
    try:
        cut = HQClient(server.url, "token", timeout=2, connect_timeout=0.5, link=link, link_hears_only_unopened=True)
        with pytest.raises(HQError):
            cut.wait_commands(0, 1)
        assert link.state == "ok"
    finally:
        server.close()
    with SlowDrip(every=0.01, body_bytes=2) as answering:
        link.report("server", 0.01)  # another loop found HQ refusing
        HQClient(answering.url, "token", timeout=2, link=link, link_hears_only_unopened=True)._request(
            "probe", "GET", "/healthz")
        assert link.state == "refused"  # the held client's answers do not judge the link
    gone = HQClient(_refused_url(), "token", timeout=2, connect_timeout=0.5, link=link, link_hears_only_unopened=True)
    with pytest.raises(HQError) as failed:
        gone.wait_commands(0, 1)
    assert failed.value.kind == "connect" and link.state == "unreachable"
