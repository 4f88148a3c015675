"""The agent's additions of issue 18: database errors and timeouts, licence transitions, container probes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from agent import db_errors
from agent.metrics import DB_OPERATIONS, AgentMetrics
from agent.probes import RestartTracker, StackProbes, parse_probes


def _samples(metrics: AgentMetrics, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for f in metrics.registry.collect() if f.name == family
            for s in f.samples if s.name.endswith("_total")}


def test_database_error_and_timeout_series_exist_before_the_first_error() -> None:
    """`increase(kitagent_db_errors_total[5m])` needs a series at 0 to see the first error."""
    m = AgentMetrics()
    for family in ("kitagent_db_errors", "kitagent_db_timeouts"):
        seen = _samples(m, family)
        assert {dict(k)["operation"] for k in seen} == set(DB_OPERATIONS)
        assert all(v == 0 for v in seen.values())


def test_a_failed_database_check_is_counted(tmp_path: Path) -> None:
    from agent.stats import Observer

    m = AgentMetrics()
    unreachable = create_engine("postgresql+psycopg://kit:x@127.0.0.1:1/kit?connect_timeout=1")
    observer = Observer(unreachable, m, keys=None, data_path=tmp_path)  # type: ignore[arg-type]
    assert observer.check_db() is False
    assert m.db_errors.labels("check")._value.get() == 1
    assert m.db_up._value.get() == 0
    unreachable.dispose()


@pytest.mark.postgres
def test_a_statement_timeout_is_counted_as_a_timeout_and_an_error(pg_url: str) -> None:
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(pg_url)
    m = AgentMetrics()
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("SET statement_timeout = 50"))
        conn.execute(text("SELECT pg_sleep(2)"))
    db_errors.record(m, "orders", caught.value)
    assert (m.db_errors.labels("orders")._value.get(), m.db_timeouts.labels("orders")._value.get()) == (1, 1)
    with pytest.raises(DBAPIError) as other, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    db_errors.record(m, "orders", other.value)
    assert (m.db_errors.labels("orders")._value.get(), m.db_timeouts.labels("orders")._value.get()) == (2, 1)
    engine.dispose()


def test_licence_transitions_are_counted_from_the_first_real_state() -> None:
    m = AgentMetrics()
    m.set_licence_state("suspended")  # the state found at start: not a transition
    m.set_licence_state("suspended")
    m.set_licence_state("active")
    m.set_licence_state("grace")
    seen = {(dict(k)["from_state"], dict(k)["to_state"]): v for k, v in _samples(m, "kitagent_licence_transitions").items()}
    assert seen == {("suspended", "active"): 1, ("active", "grace"): 1}
    assert m.licence_state.labels("grace")._value.get() == 1 and m.licence_state.labels("active")._value.get() == 0


def test_restarts_are_told_by_a_new_start_time_or_an_answer_after_a_failure() -> None:
    m = AgentMetrics()
    t = RestartTracker(m)
    t.observe("storefront", True, 100.0)
    t.observe("storefront", True, 100.0)
    assert m.container_restarts.labels("storefront")._value.get() == 0
    t.observe("storefront", False)
    assert m.container_up.labels("storefront")._value.get() == 0
    t.observe("storefront", True, 100.0)  # the network blinked; the process is the same one
    assert m.container_restarts.labels("storefront")._value.get() == 0
    t.observe("storefront", True, 250.0)  # restarted between two probes
    assert m.container_restarts.labels("storefront")._value.get() == 1
    t.observe("proxy", True)
    t.observe("proxy", False)
    t.observe("proxy", True)  # no start time to compare: back after a failure counts
    assert m.container_restarts.labels("proxy")._value.get() == 1
    assert m.container_up.labels("proxy")._value.get() == 1


@pytest.fixture
def healthz() -> Iterator[tuple[str, dict]]:
    """A service's /healthz whose answer the test changes (status, start time)."""
    state: dict = {"status": 200, "started_at": 1000}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"status": "ok", "started_at": state["started_at"]}).encode()
            self.send_response(state["status"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", state
    server.shutdown()
    server.server_close()


def test_stack_probes_over_http_drive_the_container_gauges(healthz) -> None:  # type: ignore[no-untyped-def]
    url, state = healthz
    m = AgentMetrics()
    probes = StackProbes(parse_probes(f"storefront={url},proxy=http://127.0.0.1:1/healthz"), RestartTracker(m))
    probes.run()
    assert m.container_up.labels("storefront")._value.get() == 1
    assert m.container_up.labels("proxy")._value.get() == 0  # nothing listens there
    state["status"] = 503
    probes.run()
    assert m.container_up.labels("storefront")._value.get() == 0
    state.update(status=200, started_at=2000)
    probes.run()
    assert m.container_up.labels("storefront")._value.get() == 1
    assert m.container_restarts.labels("storefront")._value.get() == 1


@pytest.mark.parametrize("spec", ["storefront", "Bad Name=http://x", "db=ftp://x", "x=" ])
def test_bad_probe_settings_are_one_line(spec: str) -> None:
    with pytest.raises(ValueError, match="KIT_STACK_PROBES"):
        parse_probes(spec)


def test_probes_are_on_by_default_for_the_stack_services() -> None:
    from agent.settings import AgentSettings

    fields = AgentSettings.model_fields
    assert set(parse_probes(fields["stack_probes"].default)) == {"storefront", "proxy"}
