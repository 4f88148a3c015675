"""Rolling a rollout back, sites that opted out of automatic upgrades, and maintenance windows, as HQ sees
them (issue 19). SQLite and PostgreSQL both.

The host's side (the window it keeps, the opt-out it reports) is tests/service/test_host_window.py.
"""

from __future__ import annotations

import json
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
from tests.hq.helpers import open_hq


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq", db_url)  # site-a
    for site_id in ("site-b", "site-c", "site-d"):
        licences.issue(service, "t", site_id, "pro", ["game"], 365)
    with service.session() as s:
        for site_id, ring in (("site-a", 0), ("site-b", 0), ("site-c", 1), ("site-d", 1)):
            s.get(Site, site_id).ring = ring  # type: ignore[union-attr]
    yield service
    service.close()


def commands_of(hq: HQ, site: str) -> list[dict]:
    with hq.session() as s:
        return [{"id": c.id, **c.payload} for c in s.scalars(
            select(Command).where(Command.type == "upgrade", Command.site_id == site).order_by(Command.seq))]


def by_site(record: dict) -> dict[str, dict]:
    return {s["site"]: s for s in record["sites"]}


def test_a_rollback_sends_each_site_that_rolled_forward_back_to_its_own_previous_version(hq: HQ) -> None:
    started = rollouts.start(hq, "op", "2.0.0", [0, 1], soak_seconds=0)
    [a] = commands_of(hq, "site-a")
    [b] = commands_of(hq, "site-b")
    rollouts.report(hq, "site-a", a["id"], "2.0.0", "upgraded", "", previous="1.0.0")
    rollouts.report(hq, "site-b", b["id"], "2.0.0", "upgraded", "", previous="1.1.0")
    [c] = commands_of(hq, "site-c")  # ring 1 went out (soak 0); site-c upgraded, site-d has not reported yet
    rollouts.report(hq, "site-c", c["id"], "2.0.0", "upgraded", "", previous="1.0.0")

    back = rollouts.rollback(hq, "op", started["id"], "checkout errors after 2.0.0")
    assert (back["state"], back["reason"]) == ("rolled_back", "checkout errors after 2.0.0")
    sites = by_site(back)
    assert {s: (v["rollback"], v["previous"]) for s, v in sites.items()} == {
        "site-a": ("sent", "1.0.0"), "site-b": ("sent", "1.1.0"), "site-c": ("sent", "1.0.0"),
        "site-d": (None, None)}  # site-d: HQ does not know what it ran before yet
    ra, rb = commands_of(hq, "site-a")[-1], commands_of(hq, "site-b")[-1]
    assert (ra["version"], ra["rollback"], ra["rollout"]) == ("1.0.0", True, started["id"])
    assert rb["version"] == "1.1.0" and len(commands_of(hq, "site-d")) == 1

    # each host answers through the same report; HQ keeps each site's rollback outcome
    rollouts.report(hq, "site-a", ra["id"], "1.0.0", "upgraded", "")
    rollouts.report(hq, "site-b", rb["id"], "2.0.0", "rolled_back", "db: not healthy")
    rc = commands_of(hq, "site-c")[-1]
    rollouts.report(hq, "site-c", rc["id"], "1.0.0", "waiting", "window 02:00-05:00 Asia/Shanghai")
    # site-d's host upgraded late, after the rollback was ordered: it is sent back at once
    [d] = commands_of(hq, "site-d")
    rollouts.report(hq, "site-d", d["id"], "2.0.0", "upgraded", "", previous="0.9.0")
    rd = commands_of(hq, "site-d")[-1]
    assert (rd["version"], rd["rollback"]) == ("0.9.0", True)

    sites = by_site(rollouts.status(hq, started["id"]))
    assert {s: (v["rollback"], v["rollback_detail"]) for s, v in sites.items()} == {
        "site-a": ("done", None), "site-b": ("failed", "db: not healthy"),
        "site-c": ("scheduled", "window 02:00-05:00 Asia/Shanghai"), "site-d": ("sent", None)}
    rollouts.report(hq, "site-a", ra["id"], "2.0.0", "rolled_back", "late")  # a repeat changes nothing
    assert by_site(rollouts.status(hq))["site-a"]["rollback"] == "done"
    with pytest.raises(ApiError) as twice:
        rollouts.rollback(hq, "op", started["id"], "again")
    assert twice.value.status == 409
    with pytest.raises(ApiError) as resumed:
        rollouts.resume(hq, "op", started["id"])
    assert resumed.value.status == 409  # a rolled-back rollout stays so
    with hq.read() as conn:
        events = conn.execute(select(AuditEvent.action, AuditEvent.operator, AuditEvent.detail)
                              .where(AuditEvent.action == "rollout.rolled_back")).all()
    assert [(e.operator, e.detail["reason"]) for e in events] == [("op", "checkout errors after 2.0.0")]


def test_a_rollback_of_a_halted_rollout_leaves_the_failed_canary_alone(hq: HQ) -> None:
    started = rollouts.start(hq, "op", "3.0.0", [0, 1], soak_seconds=0)
    [a] = commands_of(hq, "site-a")
    [b] = commands_of(hq, "site-b")
    rollouts.report(hq, "site-a", a["id"], "3.0.0", "upgraded", "", previous="2.0.0")
    rollouts.report(hq, "site-b", b["id"], "2.0.0", "rolled_back", "storefront: not healthy", previous="2.0.0")
    assert rollouts.status(hq)["state"] == "halted"
    back = rollouts.rollback(hq, "op", started["id"], "bad build")
    assert {s: v["rollback"] for s, v in by_site(back).items()} == {
        "site-a": "sent", "site-b": None, "site-c": None, "site-d": None}  # b rolled itself back; ring 1 never went
    assert len(commands_of(hq, "site-b")) == 1 and commands_of(hq, "site-c") == []


def test_a_site_whose_host_never_said_its_previous_version_is_named_not_guessed(hq: HQ) -> None:
    started = rollouts.start(hq, "op", "2.0.0", [0], soak_seconds=0)
    [a] = commands_of(hq, "site-a")
    rollouts.report(hq, "site-a", a["id"], "2.0.0", "upgraded", "")  # an older host: no `previous`
    back = by_site(rollouts.rollback(hq, "op", started["id"], "revert"))["site-a"]
    assert (back["rollback"], back["rollback_detail"]) == ("failed", "its host did not say which version it ran before")
    assert len(commands_of(hq, "site-a")) == 1  # nothing sent


def test_opted_out_sites_are_skipped_and_listed_not_counted_as_failures(hq: HQ) -> None:
    rollouts.host_settings(hq, "site-b", "02:00-05:00 Asia/Shanghai", False)
    started = rollouts.start(hq, "op", "2.0.0", [0, 1], soak_seconds=0)
    assert commands_of(hq, "site-b") == []  # never asked
    assert started["opted_out"] == ["site-b"] and started["failed"] == []
    assert by_site(started)["site-b"]["window"] == "02:00-05:00 Asia/Shanghai"
    rollouts.host_settings(hq, "site-d", None, False)  # opts out while ring 0 runs: skipped when ring 1 goes
    [a] = commands_of(hq, "site-a")
    rollouts.report(hq, "site-a", a["id"], "2.0.0", "upgraded", "", previous="1.0.0")
    assert commands_of(hq, "site-d") == [] and len(commands_of(hq, "site-c")) == 1
    # a host that opted out after its command went reports so: skipped too, and the rollout finishes
    [c] = commands_of(hq, "site-c")
    rollouts.report(hq, "site-c", c["id"], "1.0.0", "opted_out", "")
    done = rollouts.status(hq, started["id"])
    assert done["state"] == "done" and done["failed"] == []
    assert done["opted_out"] == ["site-b", "site-c", "site-d"]
    with hq.read() as conn:
        changes = conn.execute(select(AuditEvent.site_id).where(AuditEvent.action == "site.host_settings")).all()
    assert sorted(c.site_id for c in changes) == ["site-b", "site-d"]
    rollouts.host_settings(hq, "site-d", None, False)  # the same again: no new event
    with hq.read() as conn:
        assert len(conn.execute(select(AuditEvent.id).where(AuditEvent.action == "site.host_settings")).all()) == 2


def test_a_host_waiting_for_its_window_holds_its_ring_and_shows_as_waiting(hq: HQ) -> None:
    rollouts.start(hq, "op", "2.0.0", [0, 1], soak_seconds=0)
    [a] = commands_of(hq, "site-a")
    [b] = commands_of(hq, "site-b")
    rollouts.report(hq, "site-a", a["id"], "2.0.0", "upgraded", "", previous="1.0.0")
    waiting = rollouts.report(hq, "site-b", b["id"], "1.0.0", "waiting",
                              "waiting for window 02:00-05:00 Asia/Shanghai (opens 2031-05-02T02:00:00+08:00)",
                              previous="1.0.0")
    assert waiting["state"] == "scheduled" and waiting["rollout_state"] == "running"
    shown = rollouts.status(hq)
    assert shown["waiting_for_window"] == ["site-b"] and shown["current_ring"] == 0
    assert commands_of(hq, "site-c") == []  # ring 1 waits for site-b
    rollouts.report(hq, "site-b", b["id"], "2.0.0", "upgraded", "")  # the window opened
    assert len(commands_of(hq, "site-c")) == 1 and rollouts.status(hq)["waiting_for_window"] == []


def test_hosts_send_their_settings_and_rollback_outcomes_over_the_api(hq_server: RunningHQ) -> None:
    token = hq_server.issue_licence("api-a")
    with hq_server.service.session() as s:
        s.get(Site, "api-a").ring = 0  # type: ignore[union-attr]
    url, auth = f"{hq_server.url}/v1/upgrade-report", {"Authorization": f"Bearer {token}"}
    for bad in ({"window": "02:00-05:00 Asia/Shanghai"}, {"window": "2:00-5:00 UTC", "auto_upgrade": True},
                {"window": "02:00-05:00", "auto_upgrade": True}, {"auto_upgrade": "no"},
                {"command_id": "5f0c8a7e-3b1d-4c2a-9e6f-1a2b3c4d5e6f", "auto_upgrade": True},
                {"auto_upgrade": False, "previous": "1 0"}):
        r = httpx.post(url, json=bad, headers=auth, timeout=10)
        assert r.status_code == 422, (bad, r.text)
    with hq_server.service.read() as conn:
        assert conn.execute(select(Site.auto_upgrade, Site.upgrade_window).where(Site.id == "api-a")).one() == \
            (True, None)  # the refusals changed nothing
    ok = httpx.post(url, json={"window": "23:00-02:00 Europe/Paris", "auto_upgrade": True}, headers=auth, timeout=10)
    assert ok.status_code == 200, ok.text
    started = rollouts.start(hq_server.service, "op", "2.0.0", [0], 0)
    [cmd] = commands_of(hq_server.service, "api-a")
    body = {"command_id": cmd["id"], "version": "2.0.0", "outcome": "upgraded", "previous": "1.5.0",
            "window": "23:00-02:00 Europe/Paris", "auto_upgrade": True}
    assert httpx.post(url, json=body, headers=auth, timeout=10).json()["state"] == "upgraded"
    rollouts.rollback(hq_server.service, "op", started["id"], "revert")
    back = commands_of(hq_server.service, "api-a")[-1]
    said = httpx.post(url, json={**body, "command_id": back["id"], "version": "1.5.0", "previous": "2.0.0"},
                      headers=auth, timeout=10)
    assert said.status_code == 200 and said.json()["state"] == "done"
    site = by_site(rollouts.status(hq_server.service))["api-a"]
    assert (site["window"], site["rollback"], site["previous"]) == ("23:00-02:00 Europe/Paris", "done", "1.5.0")


def test_the_cli_and_the_page_roll_back_behind_a_reason_and_the_csrf_token(hq_server: RunningHQ, db_url,
                                                                           capsys) -> None:
    client = httpx.Client(base_url=hq_server.url, timeout=30, follow_redirects=False)
    assert client.post("/fleet/login", data={"token": hq_server.operator_token}).status_code == 303
    hq_server.issue_licence("rb-a")
    hq_server.issue_licence("rb-b")
    with hq_server.service.session() as s:
        s.get(Site, "rb-a").ring = 0  # type: ignore[union-attr]
        s.get(Site, "rb-b").ring = 0  # type: ignore[union-attr]
    rollouts.host_settings(hq_server.service, "rb-b", "01:00-03:00 Europe/Berlin", False)
    started = rollouts.start(hq_server.service, "op", "4.0.0", [0], 0)
    [cmd] = commands_of(hq_server.service, "rb-a")
    rollouts.report(hq_server.service, "rb-a", cmd["id"], "4.0.0", "upgraded", "", previous="3.0.0")
    page = client.get("/fleet/rollouts").text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    action = f"/fleet/rollouts/{started['id']}/rollback"
    assert f'action="{action}"' in page
    opted = page.split('id="rollout-opted-out"', 1)[1].split("</p>", 1)[0]
    assert "(1)" in opted and "rb-b" in opted and "rb-a" not in opted
    assert '<tr data-site="rb-b" data-state="opted_out"' in page and "01:00-03:00 Europe/Berlin" in page
    assert client.post(action, data={"csrf": "forged", "reason": "x"}).status_code == 403
    refused = client.post(action, data={"csrf": csrf, "reason": ""})
    assert refused.status_code == 303 and "error=reason" in refused.headers["location"]
    assert rollouts.status(hq_server.service)["state"] == "done"  # nothing changed
    done = client.post(action, data={"csrf": csrf, "reason": "payments broke"})
    after = client.get(done.headers["location"]).text
    assert 'data-state="rolled_back"' in after and 'data-rollback="sent"' in after and "→ 3.0.0" in after
    assert 'id="rollout-rollback"' not in after  # once is all
    assert "已回滚" in client.get("/fleet/rollouts?lang=zh-CN").text
    client.close()

    where = ["--database-url", db_url] if db_url else ["--hq-dir", str(hq_server.hq_dir)]
    # the CLI: a one-line refusal (exit 2) for a bad id or no reason; a rolled-back rollout twice is refused
    assert run(["hq", "rollout", "rollback", "nope", "--reason", "x", *where]) == 2
    assert run(["hq", "rollout", "rollback", started["id"], "--reason", " ",
                *where]) == 2
    capsys.readouterr()
    assert run(["hq", "rollout", "status", started["id"], "--json", *where]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "rolled_back" and shown["sites"][0]["rollback"] == "sent"
    assert run(["hq", "rollout", "rollback", started["id"], "--reason", "again",
                *where]) != 0
