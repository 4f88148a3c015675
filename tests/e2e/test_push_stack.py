"""HQ's commands reach a deployed shop over the push channel, not with the next heartbeat (issue 19).

Real Docker engine, HQ in a container, the stack deployed by `kitctl up` (the demo),
with HQ's heartbeat interval at 10 minutes: a suspension, a resume and a revocation
queued at HQ each show at the site (the agent's licence state, the shop's page) while
the agent sends no heartbeat but the one acknowledging it. The time each took is printed.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import httpx
import pytest

from tests.support.demo_stack import own_demo
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HEARTBEAT_SECONDS = 600


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    with own_demo(tmp_path_factory.mktemp("push"), "push", heartbeat_seconds=HEARTBEAT_SECONDS) as d:
        yield d


def agent_metrics(demo: Any) -> dict[str, float]:
    """The agent's licence state and how many heartbeats it has sent."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{demo.metrics_port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "kitagent_licence_state" and s.value == 1:
                out["state:" + s.labels["state"]] = 1
            if s.name == "kitagent_hq_request_duration_seconds_count" and s.labels.get("endpoint") == "heartbeat":
                out["heartbeats"] = s.value
            if s.name == "kitagent_push_connected":
                out["push"] = s.value
            if s.name == "kitagent_command_outcomes_total" and s.value:
                out[f"{s.labels['type']}:{s.labels['outcome']}"] = s.value
    return out


def test_hq_restarted_the_channel_reconnects_and_each_command_is_applied_once(demo) -> None:  # type: ignore[no-untyped-def]
    """HQ's container stopped (SIGTERM) and started again: the agent reconnects its push channel, the next
    command still comes by push (no heartbeat carries it), and nothing is applied twice."""
    from tests.infra.fixtures import docker_client

    token = demo.operator_token_path.read_text().strip()
    admin = httpx.Client(base_url=f"{demo.hq_url}/v1/admin", headers={"Authorization": f"Bearer {token}"}, timeout=15)
    eventually(lambda: agent_metrics(demo).get("push") == 1, 60, 0.5, what="the push channel answering")
    assert admin.post(f"/licences/{demo.site_id}/suspend", json={"reason": "before the restart"}).status_code == 200
    eventually(lambda: agent_metrics(demo).get("state:suspended") == 1, 30, 0.05, what="suspended before")
    hq = docker_client().containers.get(demo.hq_container)
    hq.stop(timeout=10)
    eventually(lambda: agent_metrics(demo).get("push") == 0, 30, 0.1, what="the channel down with HQ")
    hq.start()
    eventually(lambda: agent_metrics(demo).get("push") == 1, 60, 0.1, what="the channel reconnected")
    time.sleep(2)  # the heartbeat the reconnection woke is done
    beats = agent_metrics(demo)["heartbeats"]
    started = time.monotonic()
    assert admin.post(f"/licences/{demo.site_id}/resume", json=None).status_code == 200
    eventually(lambda: agent_metrics(demo).get("state:active") == 1, 30, 0.05, what="resumed after the restart")
    took = time.monotonic() - started
    time.sleep(2)
    after = agent_metrics(demo)
    print(f"resume after HQ's restart: applied at the site {took * 1000:.0f} ms after HQ queued it")
    assert after["heartbeats"] - beats == 1  # the acknowledgement only: the push channel carried it
    assert after.get("suspend:applied") == 1 and after.get("resume:applied") == 1  # none applied twice
    assert took < 2.0, took


def test_suspend_resume_revoke_reach_the_shop_by_push(demo) -> None:  # type: ignore[no-untyped-def]
    token = demo.operator_token_path.read_text().strip()
    admin = httpx.Client(base_url=f"{demo.hq_url}/v1/admin", headers={"Authorization": f"Bearer {token}"}, timeout=15)
    shop = httpx.Client(base_url=demo.site_url, verify=False, timeout=15, follow_redirects=True)
    eventually(lambda: agent_metrics(demo).get("push") == 1, 60, 0.5, what="the push channel answering")
    for path, body, state, shown in (
            ("suspend", {"reason": "push check: unpaid", "days": 3}, "suspended", "push check: unpaid"),
            ("resume", None, "active", None),
            ("revoke", {"reason": "push check: terms"}, "revoked", "push check: terms")):
        time.sleep(2)  # the acknowledging heartbeat of the step before is done
        beats = agent_metrics(demo)["heartbeats"]
        started = time.monotonic()
        assert admin.post(f"/licences/{demo.site_id}/{path}", json=body).status_code == 200
        eventually(lambda: agent_metrics(demo).get(f"state:{state}") == 1, 30, 0.05, what=f"agent {state}")
        took = time.monotonic() - started
        if shown:
            eventually(lambda: shown in shop.get("/").text, 30, 0.2, what=f"the shop showing {shown!r}")
        time.sleep(2)
        # one heartbeat since: the acknowledgement sent after applying (a heartbeat that carried the
        # command would have been two: the beat and its immediate acknowledgement)
        assert agent_metrics(demo)["heartbeats"] - beats == 1
        print(f"{path}: applied at the site {took * 1000:.0f} ms after HQ queued it")
