"""HQ's /metrics: behind a token; requests, decisions by rule, heartbeats; fleet gauges; several workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from hq.testing import RunningHQ, free_port, running_hq
from tests.monitoring.helpers import promtool_check_metrics, sample

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[RunningHQ]:
    with running_hq(tmp_path, site_rate_per_second=1000, site_rate_burst=1000) as server:
        yield server


def _scrape(hq: RunningHQ) -> str:
    r = httpx.get(f"{hq.url}/metrics", headers=hq.metrics_headers(), timeout=10)
    assert r.status_code == 200, r.text
    return r.text


def _order(order_id: str, sku: str, cents: int, buyer: str) -> dict:
    from datetime import datetime, timezone

    return {"order_id": order_id, "sku": sku, "quantity": 1, "unit_price_cents": cents, "currency": "CNY",
            "buyer": {"account": buyer, "contact": f"{buyer}@example.cn", "ip": "198.51.100.7", "region": "CN"},
            "created_at": datetime.now(timezone.utc).isoformat()}


def _delta(before: str, after: str, name: str, labels: dict[str, str] | None = None) -> float:
    return (sample(after, name, labels) or 0) - (sample(before, name, labels) or 0)


def test_metrics_need_their_own_token(hq: RunningHQ) -> None:
    assert httpx.get(f"{hq.url}/metrics").status_code == 401
    assert httpx.get(f"{hq.url}/metrics", headers=hq.admin_headers()).status_code == 401  # not an operator's
    assert (hq.hq_dir / "metrics-token").stat().st_mode & 0o777 == 0o600
    assert "metrics" not in httpx.get(f"{hq.url}/openapi.json").text


def test_decisions_rules_heartbeats_and_requests_are_counted(hq: RunningHQ) -> None:
    hq.seed_item("game-100", stock_kind="direct_topup")
    token = hq.issue_licence("alpha")
    auth = {"Authorization": f"Bearer {token}"}
    before = _scrape(hq)
    orders = [_order("o1", "game-100", 9900, "b1"), _order("o2", "game-100", 150_000, "b2"),
              _order("o3", "no-such-sku", 9900, "b3")]
    r = httpx.post(f"{hq.url}/v1/orders", headers={**auth, "Idempotency-Key": "k1"}, json={"orders": orders})
    assert [o["decision"] for o in r.json()["results"]] == ["approve", "review", "reject"]
    beat = {"version": "0.1.0", "applied_seq": 0, "health": {}, "counters": {}}
    assert httpx.post(f"{hq.url}/v1/heartbeat", headers=auth, json=beat).status_code == 200
    assert httpx.post(f"{hq.url}/v1/heartbeat", headers={"Authorization": "Bearer nope"}, json=beat).status_code == 401
    assert httpx.get(f"{hq.url}/v1/commands/wait", params={"wait": 0}, headers=auth).status_code == 200
    after = _scrape(hq)
    assert _delta(before, after, "kithq_risk_decisions_total", {"decision": "approve"}) == 1
    assert _delta(before, after, "kithq_risk_decisions_total", {"decision": "review"}) == 1
    assert _delta(before, after, "kithq_risk_rule_hits_total", {"rule": "amount_over", "decision": "review"}) == 1
    assert _delta(before, after, "kithq_risk_rule_hits_total", {"rule": "unknown_sku", "decision": "reject"}) == 1
    assert _delta(before, after, "kithq_heartbeats_total", {"outcome": "recorded"}) == 1
    assert _delta(before, after, "kithq_heartbeats_total", {"outcome": "refused"}) == 1
    assert _delta(before, after, "kithq_http_requests_total",
                  {"route": "/v1/orders", "method": "POST", "status": "200"}) == 1
    # the requests served ahead of routing (hq.fast_paths) under their own paths, not "unmatched"
    assert _delta(before, after, "kithq_http_requests_total",
                  {"route": "/v1/commands/wait", "method": "GET", "status": "200"}) == 1
    assert _delta(before, after, "kithq_http_requests_total",
                  {"route": "/v1/heartbeat", "method": "POST", "status": "401"}) == 1
    assert _delta(before, after, "kithq_http_requests_total", {"route": "unmatched", "method": "GET",
                                                                "status": "200"}) == 0
    assert token not in after and "b1@example.cn" not in after and "o1" not in after.split()
    promtool_check_metrics(after)


def test_fleet_gauges_read_the_database(hq: RunningHQ) -> None:
    from sqlalchemy import update

    from hq import licences
    from hq.clock import utcnow
    from hq.models import Site

    hq.seed_item("game-100", stock_kind="direct_topup")
    for site in ("a1", "a2", "s1", "r1"):
        hq.issue_licence(site)
    licences.suspend(hq.service, "test", "s1", "unpaid")
    licences.revoke(hq.service, "test", "r1", "terms")
    silent_for = timedelta(seconds=hq.service.settings.heartbeat_interval_seconds * 3 + 60)
    with hq.service.session() as s:
        s.execute(update(Site).where(Site.id == "a1").values(last_heartbeat_at=utcnow() - silent_for))
        s.execute(update(Site).where(Site.id == "a2").values(last_heartbeat_at=utcnow()))
    token = hq.issue_licence("a2") if False else None  # noqa: F841 (a2 keeps its licence)
    text = _scrape(hq)
    assert sample(text, "kithq_sites", {"state": "active"}) == 2
    assert sample(text, "kithq_sites", {"state": "suspended"}) == 1
    assert sample(text, "kithq_sites", {"state": "revoked"}) == 1
    assert sample(text, "kithq_sites_silent") == 1  # a1; a site that never beat is not "silent" yet
    assert sample(text, "kithq_review_queue_orders") == 0
    assert sample(text, "kithq_review_queue_oldest_age_seconds") == 0


def test_several_workers_count_together(tmp_path: Path) -> None:
    """Uvicorn workers are processes: each scrape, whichever worker answers, sees every request."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_HQ_DIR": str(tmp_path / "hq"),
           "KIT_HQ_BIND": f"127.0.0.1:{port}", "KIT_HQ_WORKERS": "2"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-800:]  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "HQ with two workers did not answer"
            time.sleep(0.2)
        token = (tmp_path / "hq" / "metrics-token").read_text().strip()
        pids = set()
        for _ in range(60):  # fresh connections, so both workers take some
            with httpx.Client() as c:
                assert c.get(f"{base}/v1/keys").status_code == 200
        seen = []
        for _ in range(6):
            with httpx.Client() as c:
                text = c.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}).text
            seen.append(sample(text, "kithq_http_requests_total", {"route": "/v1/keys", "status": "200"}))
        assert seen == [60.0] * 6
        files = list((tmp_path / "hq" / "metrics-workers").glob("counter_*.db"))
        pids = {f.stem.split("_")[1] for f in files}
        assert len(pids) == 2, files  # both workers counted some of them
    finally:
        proc.terminate()
        proc.wait(timeout=30)
