"""The agent as a process: configuration errors, /metrics, health, SIGTERM, a database restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.agent.helpers import (ROOT, AgentProcess, hq_order_counts, make_site_dir, metric_value, migrated_engine,
                                 order_counts, sqlite_url, wait_until, write_orders)

REQUIRED = {
    "kitagent_build_info", "kitagent_licence_state", "kitagent_licence_expiry_seconds",
    "kitagent_catalog_last_sync_timestamp_seconds", "kitagent_catalog_sync_duration_seconds",
    "kitagent_catalog_items", "kitagent_orders_forwarded", "kitagent_outbox_backlog",
    "kitagent_outbox_oldest_pending_age_seconds", "kitagent_hq_request_duration_seconds",
    "kitagent_hq_errors", "kitagent_heartbeat_last_success_timestamp_seconds",
    "kitagent_db_check_duration_seconds", "kitagent_process_cpu_seconds",
    "kitagent_process_resident_memory_bytes", "kitagent_host_cpu_usage_ratio",
    "kitagent_host_memory_available_bytes", "kitagent_host_disk_free_bytes",
}


def run_agent(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent"], env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
                                                              **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_bad_configuration_is_one_line_exit_2(tmp_path, hq) -> None:  # type: ignore[no-untyped-def]
    res = run_agent({})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("error: KIT_")
    site = make_site_dir(tmp_path, hq, sqlite_url(tmp_path), site_id="badlic")
    site.licence_file.write_text("not-a-licence")
    res = run_agent(site.env())
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "error: licence rejected: not a compact JWS (three base64url parts)"
    assert not (tmp_path / "site.sqlite3").exists()  # refused before touching the database


def test_metrics_health_and_graceful_sigterm(tmp_path, hq, site_id) -> None:  # type: ignore[no-untyped-def]
    site = make_site_dir(tmp_path, hq, sqlite_url(tmp_path), site_id=site_id)
    hq.seed_item(f"m-{site_id}", category="game", price_cents=1000, stock_kind="direct_topup")
    agent = AgentProcess(site, tmp_path / "agent.log").start()
    try:
        engine = migrated_engine(site.db_url)
        write_orders(engine, 5, f"m-{site_id}")
        wait_until(lambda: order_counts(engine) == {"delivered": 5}, 30, what="orders decided")
        wait_until(lambda: metric_value(agent.metrics_text(), "kitagent_catalog_items") == 1, 15,
                   what="stats refreshed")
        assert httpx.get(f"{agent.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{agent.url}/readyz").status_code == 200
        text = agent.metrics_text()
        families = list(text_string_to_metric_families(text))
        names = {f.name for f in families}
        assert REQUIRED <= names, REQUIRED - names
        assert all(n.startswith("kitagent_") for n in names)
        series = sum(len(f.samples) for f in families)
        assert series <= 400, series
        assert metric_value(text, "kitagent_orders_forwarded_total", {"decision": "approve"}) == 5
        assert metric_value(text, "kitagent_licence_state", {"state": "active"}) == 1
        assert (metric_value(text, "kitagent_licence_expiry_seconds") or 0) > 300 * 86400
        for secret in (site.licence_file.read_text(), site.site_key_file.read_text(), "buyer@example.cn"):
            assert secret not in text
        for label_values in (s.labels.values() for f in families for s in f.samples):
            assert not any(v.startswith("o") and len(v) > 16 for v in label_values)  # no order ids
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
        write_orders(engine, 50, f"m-{site_id}")
        time.sleep(0.2)
        started = time.monotonic()
        assert agent.terminate(timeout=30) == 0
        assert time.monotonic() - started < 30
        msgs = [line.get("msg") for line in agent.log_lines()]
        assert msgs[-2:] == ["stopping: finishing work in flight", "agent stopped"]
        assert sum(order_counts(engine).values()) == 55  # nothing half-written: each row pending or decided
        engine.dispose()
    finally:
        if agent.proc and agent.proc.poll() is None:
            agent.kill()


@pytest.mark.postgres
def test_database_restart_under_the_agent(tmp_path, hq, site_id) -> None:  # type: ignore[no-untyped-def]
    from tests.agent.pgcluster import RestartablePostgres
    from tests.support.postgres import create_database

    pg = RestartablePostgres()
    agent = None
    try:
        pg.start()
        url = create_database(pg.admin_url)
        site = make_site_dir(tmp_path, hq, url, site_id=site_id)
        sku = f"r-{site_id}"
        hq.seed_item(sku, category="game", price_cents=1000, stock_kind="direct_topup")
        agent = AgentProcess(site, tmp_path / "agent.log").start()
        engine = migrated_engine(url)
        write_orders(engine, 10, sku)
        wait_until(lambda: order_counts(engine) == {"delivered": 10}, 30, what="first orders decided")
        engine.dispose()
        pg.stop()
        wait_until(lambda: httpx.get(f"{agent.url}/readyz").status_code == 503, 15, what="readyz to say not ready")
        time.sleep(1.5)  # the loops keep hitting the dead database meanwhile
        assert agent.proc.poll() is None and httpx.get(f"{agent.url}/healthz").status_code == 200
        pg.start()
        wait_until(agent.ready, 30, what="readyz after the restart")
        write_orders(engine, 10, sku)
        wait_until(lambda: order_counts(engine) == {"delivered": 20}, 30, what="orders after the restart")
        assert hq_order_counts(hq, site_id) == (20, 20)
        text = agent.metrics_text()
        assert sum(s.value for f in text_string_to_metric_families(text) if f.name == "kitagent_db_errors"
                   for s in f.samples if s.name.endswith("_total")) >= 1
        down = [line for line in agent.log_lines() if line.get("msg") == "database unavailable"]
        assert 1 <= len(down) <= 5  # once per loop, not once per retry
        assert agent.terminate() == 0
        engine.dispose()
    finally:
        if agent and agent.proc and agent.proc.poll() is None:
            agent.kill()
        pg.destroy()
