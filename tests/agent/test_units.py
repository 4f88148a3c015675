"""Unit tests of the agent's pure parts; HQ is faked by a small local HTTP server with canned answers."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, strategies as st

from agent.hq_client import HQClient, HQError, NotModified
from agent.logs import JsonFormatter, LogOnce
from agent.metrics import AgentMetrics
from agent.outbox import backoff_seconds, idempotency_key
from agent.sync import Position
from sitedb.pricing import choose_rule, rounded, selling_price


@dataclass
class Rule:
    id: int
    scope: str
    kind: str
    value: int
    target: str | None = None
    rounding: str = "none"
    enabled: bool = True


# -- pricing -----------------------------------------------------------------
def test_selling_price_kinds_and_rounding() -> None:
    assert selling_price(9500, None) == 9500
    assert selling_price(9500, Rule(1, "all", "percent", 1000)) == 10450
    assert selling_price(9500, Rule(1, "all", "fixed", 250)) == 9750
    assert selling_price(1234, Rule(1, "all", "fixed", 0, rounding="jiao")) == 1240
    assert selling_price(1234, Rule(1, "all", "fixed", 0, rounding="yuan")) == 1300
    assert selling_price(1234, Rule(1, "all", "fixed", 0, rounding="yuan_minus_1")) == 1299
    assert selling_price(1300, Rule(1, "all", "fixed", 0, rounding="yuan_minus_1")) == 1399
    assert selling_price(9500, Rule(1, "all", "percent", -5000)) == 9500  # floor at HQ's price
    with pytest.raises(ValueError):
        selling_price(100, Rule(1, "all", "bogus", 1))


@given(hq=st.integers(0, 10**9), kind=st.sampled_from(["percent", "fixed"]), value=st.integers(-10**6, 10**6),
       rounding=st.sampled_from(["none", "jiao", "yuan", "yuan_minus_1"]))
def test_never_below_hq_price_and_rounding_only_goes_up(hq: int, kind: str, value: int, rounding: str) -> None:
    price = selling_price(hq, Rule(1, "all", kind, value, rounding=rounding))
    assert price >= hq
    assert rounded(hq, rounding) >= hq


def test_most_specific_rule_wins() -> None:
    rules = [Rule(1, "all", "percent", 100), Rule(2, "category", "percent", 200, target="game"),
             Rule(3, "sku", "percent", 300, target="g-1"), Rule(4, "sku", "percent", 400, target="g-1", enabled=False)]
    assert choose_rule({"sku": "g-1", "category": "game"}, rules).id == 3
    assert choose_rule({"sku": "g-2", "category": "game"}, rules).id == 2
    assert choose_rule({"sku": "p-1", "category": "phone"}, rules).id == 1
    assert choose_rule({"sku": "p-1", "category": "phone"}, rules[3:]) is None


# -- HQ client error kinds -------------------------------------------------------
@dataclass
class Seen:
    """A request as the canned HQ saw it."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Canned:
    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None
    delay: float = 0.0


def answer(status: int, json_body: object = None, text: str | None = None, headers: dict[str, str] | None = None,
           delay: float = 0.0) -> Canned:
    body = text.encode() if text is not None else (b"" if json_body is None else json.dumps(json_body).encode())
    return Canned(status, body, headers, delay)


_servers: list[object] = []


def client_for(handler) -> tuple[HQClient, AgentMetrics]:  # type: ignore[no-untyped-def]
    """An HQClient talking over real HTTP to a local server that answers with `handler(Seen)`."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            canned = handler(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            time.sleep(canned.delay)
            self.send_response(canned.status)
            for k, v in (canned.headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    _servers.append(server)
    metrics = AgentMetrics()
    return HQClient(f"http://127.0.0.1:{server.server_address[1]}", "tok", metrics, timeout=0.5), metrics


@pytest.fixture(autouse=True)
def _close_canned_servers():  # type: ignore[no-untyped-def]
    yield
    while _servers:
        server = _servers.pop()
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("response,kind", [
    (answer(500, {"error": "internal", "detail": "boom"}), "server"),
    (answer(503, text="<html>"), "server"),
    (answer(200, text="{not json"), "malformed"),
    (answer(200, {"items": "nope"}), "malformed"),
    (answer(410, {"error": "cursor_expired", "detail": "old"}), "cursor_expired"),
    (answer(401, {"error": "unknown_licence", "detail": "who"}), "auth"),
    (answer(403, {"error": "forbidden", "detail": "no"}), "auth"),
    (answer(400, {"error": "invalid_cursor", "detail": "bad"}), "client"),
])
def test_answers_become_error_kinds_and_are_counted(response: Canned, kind: str) -> None:
    client, metrics = client_for(lambda request: response)
    with pytest.raises(HQError) as err:
        client.catalog(None, 10)
    assert err.value.kind == kind
    assert metrics.hq_errors.labels("catalog", kind)._value.get() == 1
    assert "tok" not in str(err.value)


@pytest.mark.parametrize("code,state", [("licence_suspended", "suspended"), ("licence_revoked", "revoked")])
def test_a_suspended_or_revoked_licence_is_a_state_not_an_error(code: str, state: str) -> None:
    """An alert on kitagent_hq_errors_total{kind="auth"} must not fire on every suspension."""
    client, metrics = client_for(lambda request: answer(403, {"error": code, "detail": "held by HQ"}))
    with pytest.raises(HQError) as err:
        client.submit_orders([], "key")
    assert err.value.kind == "refused"
    assert metrics.hq_refused.labels("orders", state)._value.get() == 1
    errors = [s for f in metrics.registry.collect() if f.name == "kitagent_hq_errors" for s in f.samples]
    assert sum(s.value for s in errors) == 0


def test_transport_failures_are_timeout_or_connect() -> None:
    from tests.support.postgres import free_port

    slow, _ = client_for(lambda request: answer(200, {}, delay=1.5))  # the client waits 0.5 s
    with pytest.raises(HQError) as err:
        slow.heartbeat({})
    assert err.value.kind == "timeout" and err.value.retryable
    refused = HQClient(f"http://127.0.0.1:{free_port()}", "tok", AgentMetrics(), timeout=0.5)
    with pytest.raises(HQError) as err:
        refused.heartbeat({})
    assert err.value.kind == "connect" and err.value.retryable


def test_keep_alive_connection_is_reused_and_a_closed_one_replaced() -> None:
    ports: list[int] = []
    client, _ = client_for(lambda request: answer(200, {"interval_seconds": 5, "licence": {"status": "active"}}))
    for _ in range(3):
        assert client.heartbeat({}).interval_seconds == 5
        ports.append(client.http._conn.sock.getsockname()[1])  # type: ignore[union-attr]
    assert len(set(ports)) == 1  # one connection for all three
    client.http._conn.sock.close()  # type: ignore[union-attr]  # as if HQ dropped the idle connection
    assert client.heartbeat({}).interval_seconds == 5


def test_an_oversized_answer_is_refused() -> None:
    client, _ = client_for(lambda request: answer(200, text="x" * 100))
    client.http.max_body = 10
    with pytest.raises(HQError) as err:
        client.heartbeat({})
    assert err.value.kind == "malformed" and "too large" in err.value.detail


def test_catalog_etag_304_and_auth_header() -> None:
    seen = {}

    def handler(request: Seen) -> Canned:
        seen.update(request.headers)
        if request.headers.get("if-none-match") == '"e1"':
            return answer(304)
        return answer(200, {"items": [], "next_cursor": "c", "has_more": False}, headers={"ETag": '"e1"'})

    client, _ = client_for(handler)
    page = client.catalog("c", 10)
    assert page.etag == '"e1"' and seen["authorization"] == "Bearer tok"
    assert isinstance(client.catalog("c", 10, etag=page.etag), NotModified)


# -- outbox and sync helpers ---------------------------------------------------------
def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_seconds(a, 1.5, 300, rng) for a in range(20)]
    assert all(0.75 <= d <= 300 for d in delays)
    assert delays[1] < delays[4] and max(delays[12:]) <= 300 and min(delays[12:]) >= 150
    assert len({round(backoff_seconds(3, 1.5, 300), 6) for _ in range(20)}) > 1  # jitter


def test_backoff_stops_doubling_after_32_attempts() -> None:
    """Past 32 attempts the delay no longer grows (the number stays small however long an outage lasts)."""
    base, cap = 2.0 ** -40, 1e9  # a cap that is never reached, so only the doubling shows
    at = {a: backoff_seconds(a, base, cap, random.Random(7)) for a in (31, 32, 33, 10**6)}
    assert at[31] < at[32] == at[33] == at[10**6]


def test_idempotency_key_is_derived_from_site_and_orders() -> None:
    a = idempotency_key("xingchen", ["o1", "o2"])
    assert a == idempotency_key("xingchen", ["o1", "o2"]) and a.startswith("xingchen-")
    assert a != idempotency_key("xingchen", ["o1", "o3"]) != idempotency_key("other", ["o1", "o2"])
    assert len(a) <= 200


def test_sync_position_round_trip() -> None:
    for pos in (Position(None), Position("abc"), Position(None, 3), Position("xyz", 12)):
        assert Position.decode(pos.encode()) == pos
    assert Position.decode(None) is None and Position.decode("garbage") is None


def test_log_once_and_json_lines(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("agent.test")
    once = LogOnce(log)
    with caplog.at_level(logging.INFO, logger="agent.test"):
        assert once.problem("hq:x", "HQ down", kind="connect")
        assert not once.problem("hq:x", "HQ down", kind="connect")
        once.resolved("hq:x", "HQ back")
        once.resolved("hq:x", "HQ back")
    assert [r.getMessage() for r in caplog.records] == ["HQ down", "HQ back"]
    line = JsonFormatter().format(caplog.records[0])
    assert json.loads(line)["kind"] == "connect" and json.loads(line)["level"] == "warning"


# -- containers through the Docker socket (a fake Docker API on a unix socket) ---------
def test_container_health_from_a_read_only_docker_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import parse_qs, urlparse

    from agent.stats import DockerProbe

    containers = [
        {"Labels": {"com.docker.compose.project": "site-x", "com.docker.compose.service": "storefront"},
         "State": "running", "Status": "Up 5 minutes (healthy)"},
        {"Labels": {"com.docker.compose.project": "site-x", "com.docker.compose.service": "db"},
         "State": "running", "Status": "Up 5 minutes (unhealthy)"},
        {"Labels": {"com.docker.compose.project": "site-x", "com.docker.compose.service": "proxy"},
         "State": "exited", "Status": "Exited (1) 2 minutes ago"},
    ]
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.command)
            url = urlparse(self.path)
            filters = json.loads(parse_qs(url.query)["filters"][0])
            assert filters == {"label": ["com.docker.compose.project=site-x"]}
            body = json.dumps(containers).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:
            return "unix"

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            return

    sock = tmp_path / "docker.sock"
    server = socketserver.UnixStreamServer(str(sock), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        probe = DockerProbe(sock)
        probe.project = "site-x"
        assert probe.services() == {"storefront": True, "db": False, "proxy": False}
        assert seen == ["GET"]  # read-only use of the socket
    finally:
        server.shutdown()
        server.server_close()


# -- strict decoding of HQ's catalog pages (msgspec) ---------------------------------------
GOOD_ITEM = {"sku": "g-1", "name": "点卡", "category": "game", "face_value_cents": 1000, "price_cents": 950,
             "currency": "CNY", "stock_kind": "card_key", "account_pattern": None, "min_qty": 1, "max_qty": 10,
             "stock": 5, "status": "active", "version": 3, "deleted": False}


@pytest.mark.parametrize("field,value", [
    ("sku", ""), ("sku", "x" * 65), ("sku", 12), ("version", "3"), ("version", 3.0), ("deleted", "no"),
    ("name", "x" * 201), ("name", 5), ("category", "c" * 33), ("face_value_cents", -1), ("face_value_cents", "10"),
    ("price_cents", -5), ("price_cents", True), ("price_cents", 9.5), ("currency", "YUAN"), ("stock_kind", "k" * 17),
    ("account_pattern", "p" * 201), ("min_qty", "1"), ("max_qty", None), ("stock", "many"), ("status", "s" * 17),
])
def test_each_malformed_catalog_field_is_refused_with_one_line(field: str, value: object) -> None:
    body = {"items": [GOOD_ITEM, {**GOOD_ITEM, "sku": "g-2", field: value}], "next_cursor": "c", "has_more": False}
    client, metrics = client_for(lambda request: answer(200, body))
    with pytest.raises(HQError) as err:
        client.catalog(None, 10)
    assert err.value.kind == "malformed" and err.value.retryable  # the page is asked for again later
    assert err.value.detail.startswith(f"items[1].{field}: ") and "\n" not in str(err.value)
    assert metrics.hq_errors.labels("catalog", "malformed")._value.get() == 1


@pytest.mark.parametrize("body,where", [
    ({"items": {}, "next_cursor": "c", "has_more": False}, "items: "),
    ({"items": [], "next_cursor": "c" * 241, "has_more": False}, "next_cursor: "),
    ({"items": [], "has_more": False}, "next_cursor"),
    ({"items": [], "next_cursor": "c", "has_more": "yes"}, "has_more: "),
    ({"items": [{"version": 1}], "next_cursor": "c", "has_more": False}, "items[0]: "),
    ([], "body: "),
])
def test_malformed_catalog_page_shapes_are_refused_with_one_line(body: object, where: str) -> None:
    client, _ = client_for(lambda request: answer(200, body))
    with pytest.raises(HQError) as err:
        client.catalog(None, 10)
    assert err.value.kind == "malformed" and where in err.value.detail and "\n" not in str(err.value)


def test_a_good_catalog_page_decodes_with_extra_fields_ignored() -> None:
    body = {"items": [{**GOOD_ITEM, "future_field": [1, 2]}, {"sku": "gone", "version": 9, "deleted": True}],
            "next_cursor": "c2", "has_more": True, "extra": 1}
    client, _ = client_for(lambda request: answer(200, body, headers={"ETag": '"e"'}))
    page = client.catalog(None, 10)
    assert [e.sku for e in page.items] == ["g-1", "gone"] and page.items[1].deleted and page.etag == '"e"'
    assert page.items[0].price_cents == 950


# -- the sync's rule index chooses exactly as sitedb.pricing does ----------------------------
rule_st = st.builds(Rule, id=st.integers(1, 40), scope=st.sampled_from(["all", "category", "sku", "bogus"]),
                    kind=st.sampled_from(["percent", "fixed"]), value=st.integers(-2000, 5000),
                    target=st.sampled_from([None, "game", "phone", "g-1", "g-2"]),
                    rounding=st.sampled_from(["none", "jiao", "yuan", "yuan_minus_1"]), enabled=st.booleans())


@given(rules=st.lists(rule_st, max_size=8, unique_by=lambda r: r.id),
       sku=st.sampled_from(["g-1", "g-2", "p-9"]), category=st.sampled_from(["game", "phone", "video"]),
       hq_price=st.integers(0, 10**7))
def test_rule_index_matches_choose_rule_and_selling_price(rules: list[Rule], sku: str, category: str,
                                                           hq_price: int) -> None:
    from agent.sync import RuleIndex

    index = RuleIndex(rules)  # type: ignore[arg-type]
    expected = choose_rule({"sku": sku, "category": category}, rules)
    assert index.rule_for(sku, category) is expected
    want = (selling_price(hq_price, expected), expected.id if expected else None)
    assert index.price(sku, category, hq_price) == want
    assert index.price(sku, category, hq_price) == want  # remembered, same answer


def test_the_agent_loads_only_the_plugins_the_site_chose_with_its_settings(tmp_path, monkeypatch) -> None:
    """KIT_PLUGINS and KIT_PLUGIN_CONFIG_DIR, as render sets them, reach the agent's plugin host."""
    from agent.plugin_events import PluginEvents
    from agent.settings import AgentSettings

    for name, value in {"KIT_LICENCE_FILE": "l", "KIT_HQ_KEYS_FILE": "k", "KIT_SITE_KEY_FILE": "s",
                        "KIT_DATABASE_URL": f"sqlite:///{tmp_path}/site.db",
                        "KIT_SITE_CONFIG": str(tmp_path / "agent.json"), "KIT_PLUGINS": "coupons, notify",
                        "KIT_PLUGIN_CONFIG_DIR": str(tmp_path / "conf")}.items():
        monkeypatch.setenv(name, value)
    settings = AgentSettings()
    assert settings.plugin_choice() == ["coupons", "notify"] and settings.plugins_dir() == tmp_path / "conf"
    monkeypatch.delenv("KIT_PLUGIN_CONFIG_DIR")
    monkeypatch.setenv("KIT_PLUGINS", "")
    settings = AgentSettings()
    assert settings.plugin_choice() is None and settings.plugins_dir() == tmp_path / "plugins"

    events = PluginEvents(config_dir=None, enabled=["notify"])
    events.reload(["coupons", "notify", "regional-pricing"])
    assert events.host.loaded == ["notify"]
    everything = PluginEvents(config_dir=None)
    everything.reload(["coupons", "notify"])
    assert sorted(everything.host.loaded) == ["coupons", "notify"]


def test_plugins_create_their_tables_in_the_site_database_when_the_agent_loads_them(tmp_path):
    """docs/plugins.md promised prepare_database at start; no service called it, so a plugin's event handler
    met no table. The agent (the schema's owner) calls it on each load, a licence upgrade included."""
    from sqlalchemy import create_engine, inspect

    from agent.plugin_events import PluginEvents

    engine = create_engine(f"sqlite:///{tmp_path}/site.db")
    events = PluginEvents(config_dir=None, engine=engine)
    events.reload(["notify"])
    assert not inspect(engine).has_table("plugin_coupons")
    events.reload(["coupons", "notify"])  # the licence gained coupons
    assert inspect(engine).has_table("plugin_coupons")


@pytest.mark.parametrize(("hq_says", "beat", "settle"), [(5, 5, 5), (2, 5, 5), (20, 20, 20), (120, 120, 30)])
def test_hq_sets_the_pace_and_settlement_keeps_up_with_it(hq_says: float, beat: float, settle: float) -> None:
    """The agent beats and syncs at HQ's interval, never below its floor, and settles at least as often."""
    from agent.runner import Agent
    from agent.settings import AgentSettings

    agent = Agent(AgentSettings(_env_file=None, licence_file="l", hq_keys_file="k", site_key_file="s",
                                database_url="sqlite://", min_interval=5, settlement_interval=30))
    assert agent.settlement_interval == 30  # before HQ has answered: the configured cycle
    agent.follow_hq_pace(hq_says)
    assert (agent.heartbeat_interval, agent.sync_interval, agent.settlement_interval) == (beat, beat, settle)
