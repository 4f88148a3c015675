"""Notify against real local servers: a signed webhook (retries, no card keys) and SMTP e-mail."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from kitcore.licence.tiers import TIERS
from plugins.host import PluginHost
from kitctl.siteplugins import SiteLicence, configure
from plugins.notify.signing import verify_signature
from tests.plugins.helpers import event
from tests.support.postgres import free_port

SECRET = "whsec-test-9f3a"
CARD_SECRET = "CARD-SECRET-7Q2W"
# a decision as the agent sends it, plus card keys a buggy caller might leave in: the host and the plugin strip them
ORDER = {
    **event("order_decided"),
    "delivery": {"card_keys": [{"serial": "SN1", "secret": CARD_SECRET}]},
    "card_keys": [{"serial": "SN1", "secret": CARD_SECRET}],
}
CREATED = event("order_created")


class Receiver:
    """A webhook receiver on 127.0.0.1 that fails the first `fail_first` requests with `status`."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.requests: list[dict] = []
        self.fail_first, self.status = fail_first, status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "at": time.monotonic()})
                code = receiver.status if len(receiver.requests) <= receiver.fail_first else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kit"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def notify_host(site_dir, registry, *pairs: str) -> PluginHost:
    configure(site_dir, "notify", list(pairs), SiteLicence("pro", TIERS["pro"].features))
    host = PluginHost.load(TIERS["pro"].features, config_dir=site_dir, registry=registry, where="agent")
    assert "notify" in host.loaded, host.refused
    return host


def test_webhook_is_signed_verifiable_and_carries_no_card_keys(site_dir, registry, receiver_factory):
    receiver = receiver_factory()
    host = notify_host(site_dir, registry, f"webhook_url={receiver.url}", f"webhook_secret={SECRET}")
    host.emit("order_decided", ORDER)
    assert host.flush(10)
    [request] = receiver.requests
    headers, body = request["headers"], request["body"]
    assert verify_signature(SECRET, headers["X-Kit-Timestamp"], body, headers["X-Kit-Signature"])
    assert not verify_signature("wrong-secret", headers["X-Kit-Timestamp"], body, headers["X-Kit-Signature"])
    assert not verify_signature(SECRET, headers["X-Kit-Timestamp"], body + b" ", headers["X-Kit-Signature"])
    assert not verify_signature(SECRET, headers["X-Kit-Timestamp"], body, headers["X-Kit-Signature"], now=time.time() + 3600)
    document = json.loads(body)
    assert document["event"] == "order_decided" and document["data"]["order_id"] == "A1001"
    assert CARD_SECRET.encode() not in body and b"card_keys" not in body and b"SN1" not in body


def test_the_plugin_itself_strips_card_keys_even_if_called_directly(site_dir, registry, receiver_factory):
    receiver = receiver_factory()
    host = notify_host(site_dir, registry, f"webhook_url={receiver.url}", f"webhook_secret={SECRET}")
    host.plugin("notify").on_order_decided(ORDER)  # bypassing the host's redaction
    assert CARD_SECRET.encode() not in receiver.requests[0]["body"]


def test_webhook_retries_with_backoff_then_succeeds(site_dir, registry, receiver_factory):
    receiver = receiver_factory(fail_first=2, status=503)
    host = notify_host(site_dir, registry, f"webhook_url={receiver.url}", f"webhook_secret={SECRET}", "backoff_seconds=0.2", "retries=3")
    host.emit("order_created", CREATED)
    assert host.flush(20)
    assert len(receiver.requests) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:])]
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38  # 0.2 s, then 0.4 s
    assert len({r["headers"]["X-Kit-Delivery"] for r in receiver.requests}) == 1  # one delivery id to deduplicate on
    assert registry.get_sample_value("kitagent_plugin_errors_total", {"plugin": "notify", "hook": "order_created", "kind": "error"}) is None


def test_webhook_gives_up_after_bounded_retries_and_on_client_errors(site_dir, registry, receiver_factory):
    down = receiver_factory(fail_first=100, status=500)
    host = notify_host(site_dir, registry, f"webhook_url={down.url}", f"webhook_secret={SECRET}", "backoff_seconds=0", "retries=2")
    host.emit("order_created", CREATED)
    assert host.flush(20)
    assert len(down.requests) == 3
    assert registry.get_sample_value("kitagent_plugin_errors_total", {"plugin": "notify", "hook": "order_created", "kind": "error"}) == 1
    refused = receiver_factory(fail_first=100, status=400)
    host = notify_host(site_dir, registry, f"webhook_url={refused.url}", "retries=3")
    host.emit("order_created", CREATED)
    assert host.flush(20)
    assert len(refused.requests) == 1  # a 4xx is the receiver's answer, not a transient failure


def test_events_not_chosen_are_not_sent(site_dir, registry, receiver_factory):
    receiver = receiver_factory()
    host = notify_host(site_dir, registry, f"webhook_url={receiver.url}", f"webhook_secret={SECRET}", "events=order_decided")
    host.emit("order_created", CREATED)
    assert host.flush(10)
    assert receiver.requests == []


def test_email_arrives_at_a_local_smtp_server_without_card_keys(site_dir, registry):
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            self.messages.append(envelope)
            return "250 OK"

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        host = notify_host(site_dir, registry, "smtp_host=127.0.0.1", f"smtp_port={port}", "mail_from=shop@xingchen.example",
                           "mail_to=owner@xingchen.example,ops@xingchen.example")
        host.emit("order_decided", ORDER)
        assert host.flush(10)
    finally:
        controller.stop()
    [envelope] = inbox.messages
    assert envelope.rcpt_tos == ["owner@xingchen.example", "ops@xingchen.example"]
    text = envelope.content.decode()
    assert "Subject: Order A1001: delivered" in text and "total_cents: 9800" in text
    assert CARD_SECRET not in text and "SN1" not in text
