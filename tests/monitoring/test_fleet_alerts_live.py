"""HQ alert e2e: a real agent process stops → within the configured window the fleet page shows the
alert and the webhook receives it → the agent starts again → the alert resolves (page and webhook).

No Docker engine (HQ in-process, the agent a local process): not an `_e2e.py` file, so `make test` runs it
beside the engine tests rather than on their worker."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from hq.testing import running_hq
from tests.agent.helpers import AgentProcess, make_site_dir, sqlite_url, wait_until
from tests.monitoring.receivers import webhook

pytestmark = pytest.mark.slow
INTERVAL, MISSED, CHECK = 1, 3, 0.5  # heartbeat every second; silent after 3; HQ looks twice a second
WINDOW = INTERVAL * MISSED + CHECK + 5  # the alert must be out within this many seconds (5 s slack for load)


def _page(base: str, token: str) -> str:
    with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as client:
        client.post("/fleet/login", data={"token": token})
        return client.get("/fleet").text


def test_stopping_an_agent_raises_the_alert_and_starting_it_resolves_it(tmp_path: Path) -> None:
    with webhook() as hook, running_hq(tmp_path, heartbeat_interval_seconds=INTERVAL, silent_heartbeats=MISSED,
                                       alert_check_seconds=CHECK, alert_webhook_url=hook.url,
                                       site_rate_per_second=1000, site_rate_burst=1000) as hq:
        site = make_site_dir(tmp_path, hq, sqlite_url(tmp_path), site_id="e2e-watched")
        agent = AgentProcess(site, tmp_path / "agent.log", stack_probes="").start()
        try:
            wait_until(lambda: 'data-site="e2e-watched"' in _page(hq.url, hq.operator_token)
                       and "database ok" in _page(hq.url, hq.operator_token), 30, 0.5, what="site healthy at HQ")
            time.sleep(2)
            assert hook.received == []  # a beating site raises nothing
            assert agent.terminate() == 0
            stopped = time.monotonic()
            wait_until(lambda: hook.of("silent", "firing"), WINDOW, 0.2, what="the webhook to receive the alert")
            took = time.monotonic() - stopped
            assert took <= WINDOW, took
            page = _page(hq.url, hq.operator_token)
            assert 'data-alert="silent" data-site="e2e-watched"' in page and "no heartbeat for" in page
            agent = AgentProcess(site, tmp_path / "agent.log", stack_probes="").start()
            wait_until(lambda: hook.of("silent", "resolved"), 30, 0.2, what="the resolution to reach the webhook")
            page = _page(hq.url, hq.operator_token)
            assert 'data-alert="silent" data-site="e2e-watched"><td>e2e-watched' in page  # in the history now
            assert "No open alerts." in page
            assert [a["state"] for a in hook.received] == ["firing", "resolved"]  # each sent once
        finally:
            if agent.proc and agent.proc.poll() is None:
                agent.terminate()
        print(f"alert at the webhook {took:.1f} s after the agent stopped (window {WINDOW:.1f} s)")
