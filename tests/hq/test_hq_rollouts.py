"""Rollouts by rings (issue 19): the canary ring first, the next once it upgraded and soaked; a failure halts.

Every step passes its own timestamp (never the clock) where the soak time matters, so
"not a second early" is tested exactly.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select

from hq import licences, rollouts
from hq.errors import ApiError
from hq.models import AuditEvent, Command, Site
from hq.service import HQ
from hq.testing import RunningHQ
from kitctl.cli import run
from kitcore.licence.commands import verify_command
from tests.hq.helpers import open_hq

T0 = datetime(2031, 5, 1, 8, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def hq(tmp_path) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq")  # site-a
    for site_id in ("site-b", "site-c"):
        licences.issue(service, "t", site_id, "pro", ["game"], 365)
    with service.session() as s:
        for site_id, ring in (("site-a", 0), ("site-b", 1), ("site-c", None)):
            s.get(Site, site_id).ring = ring  # type: ignore[union-attr]
    yield service
    service.close()


def upgrades(hq: HQ) -> dict[str, list[dict]]:
    """Each site's queued upgrade commands' payloads."""
    found: dict[str, list[dict]] = {}
    with hq.session() as s:
        for cmd in s.scalars(select(Command).where(Command.type == "upgrade").order_by(Command.seq)):
            found.setdefault(cmd.site_id, []).append({"id": cmd.id, **cmd.payload})
    return found


def test_the_canary_ring_goes_first_and_the_next_follows_once_it_upgraded_and_soaked(hq: HQ) -> None:
    started = rollouts.start(hq, "op", "0.2.0", [0, 1], soak_seconds=600)
    assert started["state"] == "running" and started["current_ring"] == 0
    assert {s["site"]: (s["ring"], s["state"]) for s in started["sites"]} == {"site-a": (0, "sent"),
                                                                              "site-b": (1, "waiting")}
    [canary] = upgrades(hq)["site-a"]  # site-c is in no ring: never asked
    assert (canary["version"], canary["rollout"]) == ("0.2.0", started["id"]) and set(upgrades(hq)) == {"site-a"}

    answer = rollouts.report(hq, "site-a", canary["id"], "0.2.0", "upgraded", "", now=T0)
    assert (answer["state"], answer["rollout_state"]) == ("upgraded", "running")  # the ring's soak starts now
    rollouts.advance_all(hq, now=T0 + timedelta(seconds=599))
    assert set(upgrades(hq)) == {"site-a"}  # not a second early
    rollouts.advance_all(hq, now=T0 + timedelta(seconds=600))
    [wave] = upgrades(hq)["site-b"]
    assert rollouts.status(hq)["current_ring"] == 1
    rollouts.report(hq, "site-b", wave["id"], "0.2.0", "upgraded", "", now=T0 + timedelta(seconds=900))
    rollouts.report(hq, "site-b", wave["id"], "0.2.0", "rolled_back", "late")  # a repeat changes nothing
    rollouts.advance_all(hq, now=T0 + timedelta(seconds=1499))
    assert rollouts.status(hq)["state"] == "running"
    rollouts.advance_all(hq, now=T0 + timedelta(seconds=1500))
    done = rollouts.status(hq, started["id"])
    assert done["state"] == "done" and [s["state"] for s in done["sites"]] == ["upgraded", "upgraded"]
    assert len(upgrades(hq)["site-a"]) == 1 and len(upgrades(hq)["site-b"]) == 1  # each asked once


def test_a_failure_on_the_canary_halts_the_rollout_before_the_next_ring(hq: HQ) -> None:
    started = rollouts.start(hq, "op", "0.3.0-broken", [0, 1], soak_seconds=0)
    [canary] = upgrades(hq)["site-a"]
    answer = rollouts.report(hq, "site-a", canary["id"], "0.1.0", "rolled_back",
                             "storefront: not healthy after 30s; rolled back, every service as before")
    assert answer["rollout_state"] == "halted"
    rollouts.advance_all(hq, now=T0 + timedelta(days=30))
    assert set(upgrades(hq)) == {"site-a"}  # ring 1 never asked
    halted = rollouts.status(hq, started["id"])
    assert halted["state"] == "halted" and halted["reason"].startswith("ring 0: site-a failed: storefront")
    assert {s["site"]: s["state"] for s in halted["sites"]} == {"site-a": "failed", "site-b": "waiting"}
    with hq.session() as s:
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("rollout.%"))
                         .order_by(AuditEvent.id)).all() == ["rollout.start", "rollout.report", "rollout.halted"]
    # an upgrade reported at another version than the rollout's counts as failed too
    rollouts.start(hq, "op", "0.4.0", [0], soak_seconds=0)
    second = upgrades(hq)["site-a"][-1]
    assert rollouts.report(hq, "site-a", second["id"], "0.1.0", "upgraded", "")["state"] == "failed"


def test_one_rollout_at_a_time_an_operator_can_halt_it_and_bad_plans_change_nothing(hq: HQ) -> None:
    for version, rings, soak in (("bad tag", [0], 0), ("-x", [0], 0), ("1.0", [], 0), ("1.0", [0, 0], 0),
                                 ("1.0", [100], 0), ("1.0", [0], -1), ("1.0", [0], 7 * 86400 + 1), ("1.0", [7], 0)):
        with pytest.raises(ApiError) as refused:
            rollouts.start(hq, "op", version, rings, soak)
        assert refused.value.status == 422
    assert upgrades(hq) == {}
    first = rollouts.start(hq, "op", "1.0", [0, 1], 60)
    with pytest.raises(ApiError) as busy:
        rollouts.start(hq, "op", "1.1", [1], 0)
    assert busy.value.status == 409
    stopped = rollouts.halt(hq, "op", first["id"], "wrong build")
    assert (stopped["state"], stopped["reason"]) == ("halted", "wrong build")
    with pytest.raises(ApiError):
        rollouts.halt(hq, "op", first["id"], "again")
    [canary] = upgrades(hq)["site-a"]
    rollouts.report(hq, "site-a", canary["id"], "1.0", "upgraded", "")
    rollouts.advance_all(hq, now=T0 + timedelta(days=1))
    assert set(upgrades(hq)) == {"site-a"}  # halted: ring 1 never asked


def test_hosts_report_over_the_api_for_their_own_commands_only(hq_server: RunningHQ) -> None:
    tokens = {site: hq_server.issue_licence(site) for site in ("ring-a", "ring-b")}
    with hq_server.service.session() as s:
        for site, ring in (("ring-a", 0), ("ring-b", 1)):
            s.get(Site, site).ring = ring  # type: ignore[union-attr]
    started = rollouts.start(hq_server.service, "op", "2.0.0", [0, 1], 0)
    beat = httpx.post(f"{hq_server.url}/v1/heartbeat", json={"version": "1", "applied_seq": 0}, timeout=10,
                      headers={"Authorization": f"Bearer {tokens['ring-a']}"}).json()
    [token] = beat["commands"]
    envelope = verify_command(token, hq_server.service.pinned())
    assert (envelope.type, envelope.payload["version"]) == ("upgrade", "2.0.0")
    url = f"{hq_server.url}/v1/upgrade-report"
    body = {"command_id": envelope.id, "version": "2.0.0", "outcome": "upgraded", "detail": ""}
    other = httpx.post(url, json=body, headers={"Authorization": f"Bearer {tokens['ring-b']}"}, timeout=10)
    assert other.status_code == 404  # not ring-b's command
    for bad in ({**body, "outcome": "maybe"}, {**body, "version": "2.0 0"}, {**body, "command_id": "x"},
                {**body, "detail": "a\nb"}, {**body, "extra": 1}):
        r = httpx.post(url, json=bad, headers={"Authorization": f"Bearer {tokens['ring-a']}"}, timeout=10)
        assert r.status_code == 422, (bad, r.text)
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    assert rollouts.status(hq_server.service)["sites"][0]["state"] == "sent"  # the refusals changed nothing
    ok = httpx.post(url, json=body, headers={"Authorization": f"Bearer {tokens['ring-a']}"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["state"] == "upgraded"
    # soak 0: the report itself starts ring 1
    assert {s["site"]: s["state"] for s in rollouts.status(hq_server.service, started["id"])["sites"]} == \
        {"ring-a": "upgraded", "ring-b": "sent"}


def test_the_cli_starts_shows_and_halts_and_refuses_bad_input(tmp_path, capsys) -> None:
    hq_dir = tmp_path / "hq"
    assert run(["hq", "licence", "issue", "--site", "xingchen", "--categories", "game", "--registry-url", "",
                "--hq-dir", str(hq_dir)]) == 0
    service = open_hq(tmp_path / "hq")
    with service.session() as s:
        s.get(Site, "xingchen").ring = 0  # type: ignore[union-attr]
    service.close()
    capsys.readouterr()
    for bad in (["0.2.0", "--rings", "0;1"], ["0.2.0", "--rings", "x"], ["bad tag"], ["0.2.0", "--soak", "-1"],
                ["0.2.0", "--rings", "5"]):
        assert run(["hq", "rollout", "start", *bad, "--hq-dir", str(hq_dir)]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1, err
    assert run(["hq", "rollout", "status", "--hq-dir", str(hq_dir)]) == 2  # none yet
    assert run(["hq", "rollout", "status", "not-an-id", "--hq-dir", str(hq_dir)]) == 2
    capsys.readouterr()
    assert run(["hq", "rollout", "start", "0.2.0", "--rings", "0", "--soak", "0", "--json",
                "--hq-dir", str(hq_dir)]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["sites"] == [{"site": "xingchen", "ring": 0, "state": "sent", "detail": None, "reported_at": None,
                                 "window": None, "previous": None, "rollback": None, "rollback_detail": None}]
    assert run(["hq", "rollout", "halt", started["id"], "--reason", "line1\nline2", "--hq-dir", str(hq_dir)]) == 2
    assert run(["hq", "rollout", "halt", started["id"], "--reason", "stop", "--hq-dir", str(hq_dir)]) == 0
    assert "halted: stop" in capsys.readouterr().out



def test_the_fleet_page_shows_the_rollout_and_each_sites_state_in_both_languages(hq_server: RunningHQ) -> None:
    client = httpx.Client(base_url=hq_server.url, timeout=30, follow_redirects=False)
    assert client.get("/fleet/rollouts").status_code == 303  # operators only
    assert client.post("/fleet/login", data={"token": hq_server.operator_token}).status_code == 303
    assert 'id="no-rollout"' in client.get("/fleet/rollouts").text
    for site, ring in (("page-a", 0), ("page-b", 1)):
        hq_server.issue_licence(site)
        with hq_server.service.session() as s:
            s.get(Site, site).ring = ring  # type: ignore[union-attr]
    started = rollouts.start(hq_server.service, "op", "3.0.0", [0, 1], 0)
    [cmd] = upgrades(hq_server.service)["page-a"]
    rollouts.report(hq_server.service, "page-a", cmd["id"], "2.9.0", "rolled_back", "storefront: <not healthy>")
    page = client.get("/fleet/rollouts")
    assert page.status_code == 200 and f'data-id="{started["id"]}" data-state="halted"' in page.text
    assert '<tr data-site="page-a" data-state="failed"' in page.text and "&lt;not healthy&gt;" in page.text
    assert '<tr data-site="page-b" data-state="waiting"' in page.text and 'id="nav-rollouts"' in page.text
    zh = client.get("/fleet/rollouts?lang=zh-CN").text
    assert "已停止" in zh and "失败" in zh and "等待" in zh
    assert client.get("/fleet/rollouts?x=1").status_code == 400  # like every fleet page
    client.close()


def test_a_halted_rollout_resumes_from_its_ring_and_retries_the_failed_sites_there(hq: HQ) -> None:
    first = rollouts.start(hq, "op", "5.0.0", [0, 1], 0)
    [canary] = upgrades(hq)["site-a"]
    rollouts.report(hq, "site-a", canary["id"], "4.0.0", "rolled_back", "db: not healthy")
    with pytest.raises(ApiError) as not_halted:
        rollouts.resume(hq, "op", str(uuid_of_nothing()))
    assert not_halted.value.status == 404
    resumed = rollouts.resume(hq, "op", first["id"])
    assert (resumed["state"], resumed["current_ring"], resumed["reason"]) == ("running", 0, None)
    retry = upgrades(hq)["site-a"][-1]
    assert retry["id"] != canary["id"] and set(upgrades(hq)) == {"site-a"}  # asked again, ring 1 still not
    with pytest.raises(ApiError) as running:
        rollouts.resume(hq, "op", first["id"])
    assert running.value.status == 409
    with pytest.raises(ApiError) as stale:  # the first command's late report: HQ no longer waits for it
        rollouts.report(hq, "site-a", canary["id"], "5.0.0", "upgraded", "")
    assert stale.value.status == 404 and set(upgrades(hq)) == {"site-a"}
    rollouts.report(hq, "site-a", retry["id"], "5.0.0", "upgraded", "")
    assert set(upgrades(hq)) == {"site-a", "site-b"}  # soak 0: ring 1 at once


def uuid_of_nothing() -> str:
    import uuid

    return str(uuid.uuid4())


def test_the_rollout_page_halts_and_resumes_the_rollout_behind_the_csrf_token(hq_server: RunningHQ) -> None:
    client = httpx.Client(base_url=hq_server.url, timeout=30, follow_redirects=False)
    assert client.post("/fleet/login", data={"token": hq_server.operator_token}).status_code == 303
    for site, ring in (("act-a", 0), ("act-b", 1)):
        hq_server.issue_licence(site)
        with hq_server.service.session() as s:
            s.get(Site, site).ring = ring  # type: ignore[union-attr]
    started = rollouts.start(hq_server.service, "op", "4.0.0", [0, 1], 0)
    page = client.get("/fleet/rollouts").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert f'action="/fleet/rollouts/{started["id"]}/halt"' in page and 'id="rollout-resume"' not in page

    halt = f"/fleet/rollouts/{started['id']}/halt"
    assert client.post(halt, data={"csrf": "forged", "reason": "x"}).status_code == 403
    assert httpx.post(f"{hq_server.url}{halt}", data={"csrf": csrf, "reason": "x"}).status_code == 401
    refused = client.post(halt, data={"csrf": csrf, "reason": "two\nlines"})
    assert refused.status_code == 303 and "error=reason" in refused.headers["location"]
    assert rollouts.status(hq_server.service)["state"] == "running"  # nothing changed

    done = client.post(halt, data={"csrf": csrf, "reason": "canary looks slow"})
    assert done.status_code == 303
    after = client.get(done.headers["location"]).text
    assert 'data-state="halted"' in after and "canary looks slow" in after and "4.0.0: halted" in after
    assert f'action="/fleet/rollouts/{started["id"]}/resume"' in after
    again = client.post(halt, data={"csrf": csrf, "reason": "again"})  # not running: the refusal, in one line
    assert "is%20halted" in again.headers["location"]
    with hq_server.service.read() as conn:
        events = conn.execute(select(AuditEvent.operator, AuditEvent.action)
                              .where(AuditEvent.action.in_(["rollout.halted", "rollout.resume"]))).all()
    assert [e.action for e in events] == ["rollout.halted"] and events[0].operator != "hq"  # the page's operator

    resumed = client.post(f"/fleet/rollouts/{started['id']}/resume", data={"csrf": csrf})
    assert "4.0.0%3A%20running" in resumed.headers["location"]
    assert rollouts.status(hq_server.service)["state"] == "running"
    assert client.post("/fleet/rollouts/not-a-uuid/halt", data={"csrf": csrf, "reason": "x"}).status_code == 422
    assert client.post(f"/fleet/rollouts/{started['id']}/promote", data={"csrf": csrf}).status_code in (404, 422)
    client.close()
