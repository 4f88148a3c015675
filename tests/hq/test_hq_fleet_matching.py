"""The fleet page's bulk actions on "all matching the filter" (past the 200 ticked sites a page holds) and
its column and filter of sites that opted out of automatic upgrades (issue 19). 3,000 sites, SQLite and
PostgreSQL; the count the confirmation names is checked against the seed's own arithmetic."""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from hq import rollouts
from hq.models import AuditEvent, Command, Site
from hq.testing import RunningHQ, seed_fleet
from tests.hq.test_hq_fleet_page import csrf, listed, matches

SEEDED = 3000


@pytest.fixture
def operator(hq_server: RunningHQ) -> Iterator[httpx.Client]:
    seed_fleet(hq_server.service, SEEDED)
    client = httpx.Client(base_url=hq_server.url, timeout=120, follow_redirects=False)
    assert client.post("/fleet/login", data={"token": hq_server.operator_token}).status_code == 303
    yield client
    client.close()


def seeded_active_in_ring(ring: int) -> set[str]:
    """seed_fleet's own rules: active unless i % 10 is 3 or 7, expired when i % 20 == 19, ring i % 4 unless i % 5 == 0."""
    return {f"site-{i:05d}" for i in range(SEEDED)
            if i % 10 not in (3, 7) and i % 20 != 19 and i % 5 != 0 and i % 4 == ring}


def commanded(hq: RunningHQ, type_: str) -> set[str]:
    with hq.service.read() as conn:
        return set(conn.execute(select(Command.site_id).where(Command.type == type_)).scalars())


def test_suspend_all_matching_names_the_count_then_queues_one_signed_command_each(hq_server, operator) -> None:
    expected = seeded_active_in_ring(2)
    page = operator.get("/fleet", params={"state": "active", "ring": "2"}).text
    assert matches(page) == len(expected) and 'id="bulk-matching"' in page
    form = {"csrf": csrf(page), "action": "suspend", "reason": "fraud wave", "scope": "matching",
            "back": "?state=active&ring=2"}
    ask = operator.post("/fleet/bulk", data=form)
    n = len(expected)
    assert ask.status_code == 200 and f"suspend: all {n} sites matching the filter?" in ask.text
    assert f'name="count" value="{n}"' in ask.text and not commanded(hq_server, "suspend")  # asked, not done

    stale = operator.post("/fleet/bulk", data={**form, "confirm": "yes", "count": str(n + 1)})
    assert stale.status_code == 200 and f"all {n} sites" in stale.text  # the count changed: asked again
    assert not commanded(hq_server, "suspend")

    started = time.perf_counter()
    done = operator.post("/fleet/bulk", data={**form, "confirm": "yes", "count": str(n)})
    took = time.perf_counter() - started
    assert done.status_code == 303, done.text
    assert f"suspend: {n} of {n} sites done" in operator.get(done.headers["location"]).text
    assert commanded(hq_server, "suspend") == expected
    with hq_server.service.read() as conn:
        statuses = dict(conn.execute(select(Site.id, Site.status).where(Site.id.in_(expected))).all())
        outside = conn.execute(select(func.count()).select_from(Site).where(
            Site.status == "suspended", Site.id.not_in(expected))).scalar_one()
        seqs = set(conn.execute(select(Command.seq).where(Command.type == "suspend")).scalars())
        events = conn.execute(select(AuditEvent.action, AuditEvent.detail)
                              .where(AuditEvent.action.in_(["fleet.bulk", "licence.suspend"]))).all()
    assert set(statuses.values()) == {"suspended"} and seqs == {1}  # each site's own next sequence
    assert outside == sum(1 for i in range(SEEDED) if i % 10 == 3)  # only the seeded ones besides
    [bulk] = [e.detail for e in events if e.action == "fleet.bulk"]
    assert (bulk["scope"], bulk["count"], bulk["done"], bulk["skipped"]) == ("matching", n, n, 0)
    assert bulk["filter"] == "?state=active&ring=2"
    assert sum(e.action == "licence.suspend" and e.detail["bulk"] for e in events) == n
    print(f"\nsuspend all matching: {n} of {SEEDED} sites in {took * 1000:.0f} ms")


def test_resume_and_ring_all_matching_skip_what_does_not_apply(hq_server, operator) -> None:
    page = operator.get("/fleet", params={"q": "Licensee 1"}).text  # licensees 1, 10-19, 100-199 …
    n = matches(page)
    form = {"csrf": csrf(page), "action": "resume", "scope": "matching", "back": "?q=Licensee+1", "confirm": "yes",
            "count": str(n)}
    done = operator.post("/fleet/bulk", data=form)
    suspended = {f"site-{i:05d}" for i in range(SEEDED) if i % 10 == 3 and str(i % 500).startswith("1")}
    assert commanded(hq_server, "resume") == suspended
    back = operator.get(done.headers["location"]).text
    assert f"resume: {len(suspended)} of {n} sites done" in back and f"{n - len(suspended)} matching sites skipped" \
        in back
    ring = operator.post("/fleet/bulk", data={**form, "action": "ring", "ring": "3"})
    assert ring.status_code == 303
    assert matches(operator.get("/fleet", params={"q": "Licensee 1", "ring": "3"}).text) == n


def test_revoke_and_bad_scopes_for_all_matching_are_refused_and_change_nothing(hq_server, operator) -> None:
    page = operator.get("/fleet").text
    base = {"csrf": csrf(page), "scope": "matching", "back": "?ring=1", "confirm": "yes", "count": "1"}
    for change, names in (({"action": "revoke"}, "action"), ({"action": "suspend", "scope": "everything"}, "scope"),
                          ({"action": "suspend", "back": "?ring=x"}, "ring")):
        r = operator.post("/fleet/bulk", data={**base, **change})
        assert r.status_code == 400 and r.json()["detail"].startswith(names + ":"), (change, r.text)
    assert not commanded(hq_server, "revoke") and not commanded(hq_server, "suspend")


def test_opted_out_sites_show_in_their_column_and_the_filter_finds_them(hq_server, operator) -> None:
    for site in ("site-00011", "site-00022", "site-02999"):
        rollouts.host_settings(hq_server.service, site, "02:00-05:00 Asia/Shanghai", False)
    page = operator.get("/fleet", params={"upgrades": "opted_out"}).text
    assert listed(page) == ["site-00011", "site-00022", "site-02999"] and matches(page) == 3
    assert page.count('data-upgrades="opted_out"') == 3 and "02:00-05:00 Asia/Shanghai" in page
    assert matches(operator.get("/fleet", params={"upgrades": "auto"}).text) == SEEDED - 3
    assert "已退出" in operator.get("/fleet", params={"upgrades": "opted_out", "lang": "zh-CN"}).text
    assert operator.get("/fleet", params={"upgrades": "never"}).status_code == 400
    # and a rollout skips them, listing them (site-00011 is in ring 3, site-00022 in ring 2)
    with hq_server.service.session() as s:
        s.get(Site, "site-00011").ring = 0  # type: ignore[union-attr]
        s.get(Site, "site-00001").ring = 0  # type: ignore[union-attr]
    shown = rollouts.start(hq_server.service, "op", "9.9.9", [0], 0)
    assert "site-00011" in shown["opted_out"] and "site-00011" not in shown["failed"]
    assert "site-00011" not in commanded(hq_server, "upgrade") and "site-00001" in commanded(hq_server, "upgrade")
