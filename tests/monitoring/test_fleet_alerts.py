"""HQ watches its fleet: alerts open, are kept with their history, show as badges, reach operators by
webhook and mail once, and resolve by themselves."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from sqlalchemy import update

from hq import fleet_alerts
from hq.clock import utcnow
from hq.models import Site
from hq.testing import RunningHQ, running_hq
from tests.monitoring.receivers import Mailbox, Webhook, smtp_server, webhook


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[RunningHQ, Webhook, Mailbox]]:
    with webhook() as hook, smtp_server() as (box, port):
        # alert_check_seconds is long: the test runs the rounds itself
        with running_hq(tmp_path, heartbeat_interval_seconds=10, silent_heartbeats=3, alert_check_seconds=3600,
                        alert_webhook_url=hook.url, alert_email_to="ops@example.cn", smtp_host="127.0.0.1",
                        smtp_port=port, outbox_backlog_alert=100, sync_stale_seconds=600) as hq:
            yield hq, hook, box


def _site(hq: RunningHQ, site: str, seconds_ago: float, health: dict[str, Any]) -> str:
    """A licensed site whose last heartbeat was `seconds_ago` with `health`; returns its licence token."""
    token = hq.issue_licence(site)
    with hq.service.session() as s:
        s.execute(update(Site).where(Site.id == site).values(
            last_heartbeat_at=utcnow() - timedelta(seconds=seconds_ago), health=health))
    return token


def test_a_silent_site_alerts_once_and_resolves_when_it_beats_again(watched) -> None:  # type: ignore[no-untyped-def]
    hq, hook, box = watched
    token = _site(hq, "quiet", 45, {"db": "ok"})  # three intervals of 10 s are 30 s
    _site(hq, "fine", 2, {"db": "ok"})
    _site(hq, "new", 0, {})
    with hq.service.session() as s:  # licensed, never launched: not watched
        s.execute(update(Site).where(Site.id == "new").values(last_heartbeat_at=None))
    assert fleet_alerts.watch(hq.service) == 1
    [fired] = hook.received
    assert (fired["site"], fired["kind"], fired["state"], fired["severity"]) == ("quiet", "silent", "firing", "critical")
    assert box.subjects() == ["[kitctl HQ] FIRING quiet: site silent"]
    assert "no heartbeat for 45 s" in box.messages[0].get_content()
    assert fleet_alerts.watch(hq.service) == 0  # still silent: nothing sent twice
    assert len(hook.received) == 1 and len(box.messages) == 1
    beat = {"version": "0.1.0", "applied_seq": 0, "health": {"db": "ok"}, "counters": {}}
    assert httpx.post(f"{hq.url}/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}, json=beat).status_code == 200
    assert fleet_alerts.watch(hq.service) == 1
    assert [a["state"] for a in hook.of("silent", "resolved")] == ["resolved"]
    assert box.subjects()[-1] == "[kitctl HQ] RESOLVED quiet: site silent"
    firing, history = fleet_alerts.listing(hq.service)
    assert firing == [] and [(a["site"], a["kind"]) for a in history] == [("quiet", "silent")]


def test_unhealthy_database_stale_sync_and_backlog_each_alert(watched) -> None:  # type: ignore[no-untyped-def]
    hq, hook, _ = watched
    old_sync = (utcnow() - timedelta(hours=2)).isoformat()
    _site(hq, "sick", 1, {"db": "down", "outbox_pending": 250, "last_sync_at": old_sync})
    _site(hq, "well", 1, {"db": "ok", "outbox_pending": 3, "last_sync_at": utcnow().isoformat()})
    fleet_alerts.watch(hq.service)
    assert sorted((a["site"], a["kind"]) for a in hook.received) == [
        ("sick", "db_unhealthy"), ("sick", "outbox_backlog"), ("sick", "sync_stale")]
    text = httpx.get(f"{hq.url}/metrics", headers=hq.metrics_headers()).text
    assert 'kithq_fleet_alerts_firing{kind="db_unhealthy"} 1.0' in text


def test_a_problem_that_returns_opens_a_new_alert_and_history_keeps_both(watched) -> None:  # type: ignore[no-untyped-def]
    hq, hook, _ = watched
    _site(hq, "flaky", 1, {"db": "down"})
    fleet_alerts.watch(hq.service)
    for db in ("ok", "down", "ok"):
        with hq.service.session() as s:
            s.execute(update(Site).where(Site.id == "flaky").values(health={"db": db}))
        fleet_alerts.watch(hq.service)
    states = [a["state"] for a in hook.received]
    assert states == ["firing", "resolved", "firing", "resolved"]
    _, history = fleet_alerts.listing(hq.service)
    assert len(history) == 2 and len({a["id"] for a in history}) == 2


def test_a_refused_notification_is_retried_and_then_sent_once(watched) -> None:  # type: ignore[no-untyped-def]
    hq, hook, box = watched
    hook.status = 503
    _site(hq, "quiet", 60, {})
    assert fleet_alerts.watch(hq.service) == 0  # the webhook refused: not marked as sent
    hook.status = 200
    assert fleet_alerts.watch(hq.service) == 1
    assert len(hook.of("silent", "firing")) == 1
    assert len(box.messages) == 2  # mail went out on both rounds: it is one channel of the two that failed


def test_the_fleet_page_shows_health_as_badges_and_the_open_alerts(watched) -> None:  # type: ignore[no-untyped-def]
    hq, _, _ = watched
    _site(hq, "sick", 1, {"db": "down", "outbox_pending": 5, "catalog_items": 1200, "outbox_review": 2})
    fleet_alerts.watch(hq.service)
    with httpx.Client(base_url=hq.url, follow_redirects=True) as client:
        client.post("/fleet/login", data={"token": hq.operator_token})
        page = client.get("/fleet").text
    row = re.search(r'<tr data-site="sick">.*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    assert '<span class="badge crit">database down</span>' in row
    assert '<span class="badge ok">5 orders waiting</span>' in row
    assert '<span class="badge ok">1,200 items</span>' in row
    assert "db: down" not in page and "outbox_pending" not in page
    assert re.search(r'<tr data-alert="db_unhealthy" data-site="sick">', page)
