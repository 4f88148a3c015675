"""The fleet page over HTTP on SQLite and PostgreSQL: search, filters, sort, paging, validation,
bulk actions with their confirmation, the site page's history, and both languages."""

from __future__ import annotations

import re
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select, text

from hq import fleet_alerts, fleet_query
from hq.clock import utcnow
from hq.models import AuditEvent, Command, Site
from hq.testing import RunningHQ, seed_fleet
from tests.hq.helpers import auth, http

SEEDED = 400


@pytest.fixture
def operator(hq_server: RunningHQ) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=hq_server.url, timeout=30, follow_redirects=False)
    assert client.post("/fleet/login", data={"token": hq_server.operator_token}).status_code == 303
    yield client
    client.close()


@pytest.fixture
def fleet(hq_server: RunningHQ) -> RunningHQ:
    seed_fleet(hq_server.service, SEEDED)
    fleet_alerts.evaluate(hq_server.service)  # a watch round that read the fleet before the seed resolved its alerts
    return hq_server


def listed(html: str) -> list[str]:
    """The site ids in the sites table, in order."""
    table = html[html.index('<table id="sites">'):]
    table = table[:table.index("</table>")]
    return re.findall(r'<tr data-site="([^"]+)">', table)


def matches(html: str) -> int:
    return int(re.search(r'id="matches"[^>]*>\s*(\d+)', html).group(1))


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_search_matches_the_start_of_site_licensee_or_domain_literally(fleet, operator):
    page = operator.get("/fleet", params={"q": "site-0001"}).text
    assert listed(page) == [f"site-{i:05d}" for i in range(10, 20)] and matches(page) == 10
    page = operator.get("/fleet", params={"q": "Licensee 7", "size": "200"}).text
    # i % 500 in {7, 70..79}: with 400 sites, 7 and 70..79
    assert set(listed(page)) == {f"site-{i:05d}" for i in [7, *range(70, 80)]}
    assert listed(operator.get("/fleet", params={"q": "SHOP12.example12"}).text) == ["site-00012"]  # case-blind
    for literal in ("%", "_", "site-0001%", "site_0001", "*", "site-0001*", "[s]ite", "?"):
        page = operator.get("/fleet", params={"q": literal}).text
        assert matches(page) == 0 and listed(page) == [], literal  # wildcards in the input are plain characters
    assert matches(operator.get("/fleet", params={"q": "ite-0001"}).text) == 0  # the start, not anywhere


def test_filters_each_narrow_the_list_to_what_they_name(fleet, operator):
    def ids(**params: str) -> set[str]:
        page = operator.get("/fleet", params={"size": "200", **params})
        assert page.status_code == 200, page.text
        found = set(listed(page.text))
        assert matches(page.text) == len(found) or matches(page.text) > 200
        return found

    every = range(SEEDED)
    assert ids(state="suspended") == {f"site-{i:05d}" for i in every if i % 10 == 3}
    assert ids(state="revoked") == {f"site-{i:05d}" for i in every if i % 10 == 7}
    expired = {f"site-{i:05d}" for i in every if i % 20 == 19 and i % 10 not in (3, 7)}
    assert ids(state="expired") == expired
    assert ids(tier="flagship", state="suspended") == {f"site-{i:05d}" for i in every if i % 3 == 2 and i % 10 == 3}
    assert ids(version="0.4.0", ring="1") == {f"site-{i:05d}" for i in every if i % 3 == 2 and i % 5 and i % 4 == 1}
    assert ids(ring="none", state="revoked") == {f"site-{i:05d}" for i in every if i % 5 == 0 and i % 10 == 7}
    assert ids(alert="silent") == ids(alert="any") == {f"site-{i:05d}" for i in every if i % 100 == 50}
    assert ids(alert="db_unhealthy") == set()


def test_open_alerts_above_the_list_are_the_page_sites_then_ten_in_all(hq_server, operator):
    seed_fleet(hq_server.service, 1500)  # 15 silent sites: 50, 150, … 1450
    fleet_alerts.evaluate(hq_server.service)

    def alerted(html: str) -> list[str]:
        table = html.split('<table id="alerts">')[1].split("</table>")[0]
        return re.findall(r'<tr data-alert="silent" data-site="([^"]+)">', table)

    first = operator.get("/fleet").text
    assert len(alerted(first)) == 10 and "10 of 15 open alerts shown." in first
    assert 'href="/fleet?alert=any"' in first
    assert alerted(operator.get("/fleet", params={"q": "site-0145"}).text)[0] == "site-01450"


def test_sort_and_paging_come_from_the_server(fleet, operator):
    first = operator.get("/fleet", params={"size": "25"}).text
    assert listed(first) == [f"site-{i:05d}" for i in range(25)] and matches(first) == SEEDED
    assert "page 1 of 16" in first and 'rel="next"' in first and 'rel="prev"' not in first
    second = operator.get("/fleet", params={"size": "25", "page": "2"}).text
    assert listed(second) == [f"site-{i:05d}" for i in range(25, 50)]
    last = operator.get("/fleet", params={"size": "25", "page": "16"}).text
    assert listed(last) == [f"site-{i:05d}" for i in range(375, 400)] and 'rel="next"' not in last
    assert listed(operator.get("/fleet", params={"size": "25", "page": "17"}).text) == []  # past the end: empty
    down = listed(operator.get("/fleet", params={"sort": "site", "order": "desc", "size": "25"}).text)
    assert down == [f"site-{i:05d}" for i in range(399, 374, -1)]
    with fleet.service.read() as conn:
        newest = [r for (r,) in conn.execute(select(Site.id).order_by(Site.last_heartbeat_at.desc(), Site.id.desc())
                                             .limit(25))]
        by_version = [r for (r,) in conn.execute(select(Site.id).order_by(Site.version.asc(), Site.id.asc()).limit(25))]
    assert listed(operator.get("/fleet", params={"sort": "heartbeat", "order": "desc", "size": "25"}).text) == newest
    assert listed(operator.get("/fleet", params={"sort": "version", "size": "25"}).text) == by_version
    ringed = listed(operator.get("/fleet", params={"sort": "ring", "order": "desc", "size": "100"}).text)
    assert ringed[0] == "site-00399" and all(int(s[-5:]) % 4 == 3 and int(s[-5:]) % 5 for s in ringed[:10])


BAD_QUERIES = [
    ("size=7", "size"), ("size=100000", "size"), ("page=0", "page"), ("page=-1", "page"), ("page=abc", "page"),
    ("page=1e3", "page"), ("page=10001", "page"), ("sort=token_sha256", "sort"), ("sort=id;drop", "sort"),
    ("order=sideways", "order"), ("state=deleted", "state"), ("tier=gold", "tier"), ("ring=100", "ring"),
    ("ring=-1", "ring"), ("ring=a", "ring"), ("alert=fire", "alert"), ("version=0.3.1'--", "version"),
    ("q=" + "x" * 101, "q"), ("q=a%0Ab", "q"), ("state=active&state=revoked", "state"), ("colour=red", "colour"),
    ("lang=fr", "lang"),
]


def test_every_bad_parameter_is_a_400_naming_it(hq_server, operator):
    for query, names in BAD_QUERIES:
        r = operator.get("/fleet?" + query)
        assert r.status_code == 400, (query, r.text)
        body = r.json()
        assert body["error"] == "invalid_query" and body["detail"].startswith(names + ":"), (query, body)
        assert "\n" not in body["detail"]


def test_the_page_needs_a_login_first(hq_server):
    r = http.get(f"{hq_server.url}/fleet?q=site", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fleet/login"


def _commands(hq: RunningHQ, kind: str) -> set[str]:
    with hq.service.read() as conn:
        return {s for (s,) in conn.execute(select(Command.site_id).where(Command.type == kind))}


def _statuses(hq: RunningHQ, ids: list[str]) -> dict[str, str]:
    with hq.service.read() as conn:
        return dict(conn.execute(select(Site.id, Site.status).where(Site.id.in_(ids))).all())


def test_bulk_suspend_asks_first_naming_the_count_then_acts_through_signed_commands(fleet, operator):
    page = operator.get("/fleet", params={"state": "active", "size": "25"}).text
    chosen = listed(page)[:5] + ["site-00003"]  # one already suspended: reported, the others go on
    form = {"csrf": csrf(page), "action": "suspend", "reason": "chargebacks", "sites": chosen,
            "back": "?state=active&size=25"}
    ask = operator.post("/fleet/bulk", data=form)
    assert ask.status_code == 200 and "suspend: 6 sites?" in ask.text and "Yes, suspend 6 sites" in ask.text
    assert _statuses(fleet, chosen[:5]) == {s: "active" for s in chosen[:5]} and not _commands(fleet, "suspend")

    done = operator.post("/fleet/bulk", data={**form, "confirm": "yes"})
    assert done.status_code == 303
    target = done.headers["location"]
    assert target.startswith("/fleet?state=active&size=25&msg=")
    back = operator.get(target).text
    assert "suspend: 5 of 6 sites done" in back and "1 not done, e.g. site-00003" in back
    assert _statuses(fleet, chosen[:5]) == {s: "suspended" for s in chosen[:5]}
    assert _commands(fleet, "suspend") == set(chosen[:5])
    with fleet.service.read() as conn:
        events = conn.execute(select(AuditEvent.action, AuditEvent.operator, AuditEvent.detail)
                              .where(AuditEvent.action.in_(["fleet.bulk", "licence.suspend"]))).all()
    bulk = [e for e in events if e.action == "fleet.bulk"]
    assert len(bulk) == 1 and bulk[0].operator == "tester" and bulk[0].detail["count"] == 6
    assert bulk[0].detail["done"] == 5 and list(bulk[0].detail["failed"]) == ["site-00003"]
    assert sum(e.action == "licence.suspend" for e in events) == 5


def test_a_site_hears_of_a_bulk_suspension_at_its_next_heartbeat(hq_server, operator):
    token = hq_server.issue_licence("xingchen")
    page = operator.get("/fleet").text
    form = {"csrf": csrf(page), "action": "suspend", "sites": ["xingchen"], "confirm": "yes"}
    assert operator.post("/fleet/bulk", data=form).status_code == 303
    beat = http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token),
                     json={"version": "0.3.1", "applied_seq": 0, "health": {}}).json()
    assert beat["licence"]["status"] == "suspended" and len(beat["commands"]) == 1


def test_bulk_ring_and_sync_then_the_ring_filter_finds_them(fleet, operator):
    page = operator.get("/fleet", params={"ring": "none", "size": "25"}).text
    chosen = listed(page)[:4]
    form = {"csrf": csrf(page), "action": "ring", "ring": "2", "sites": chosen, "confirm": "yes"}
    assert operator.post("/fleet/bulk", data=form).status_code == 303
    assert set(chosen) <= set(listed(operator.get("/fleet", params={"ring": "2", "size": "200"}).text))
    sync = {"csrf": csrf(page), "action": "sync", "sites": chosen[:2], "confirm": "yes"}
    assert operator.post("/fleet/bulk", data=sync).status_code == 303
    assert _commands(fleet, "sync_now") == set(chosen[:2])


BAD_BULK = [
    ({"action": "explode"}, "action"), ({"sites": []}, "sites"), ({"sites": ["Bad Site"]}, "sites"),
    ({"sites": [f"s-{i:04d}" for i in range(201)]}, "sites"), ({"sites": ["site-00001", "site-00001"]}, "sites"),
    ({"action": "ring", "ring": "x"}, "ring"), ({"action": "ring", "ring": "100"}, "ring"),
    ({"reason": "two\nlines"}, "reason"), ({"back": "https://elsewhere.example/"}, "back"),
    ({"back": "?sort=secret"}, "sort"),
]


def test_bad_bulk_requests_are_refused_and_change_nothing(hq_server, operator):
    seed_fleet(hq_server.service, 3)
    page = operator.get("/fleet").text
    for change, names in BAD_BULK:
        form = {"csrf": csrf(page), "action": "suspend", "sites": ["site-00001", "site-00002"], "confirm": "yes",
                **change}
        r = operator.post("/fleet/bulk", data=form)
        assert r.status_code == 400 and r.json()["detail"].startswith(names + ":"), (change, r.text)
    assert _statuses(hq_server, ["site-00001", "site-00002"]) == {"site-00001": "active", "site-00002": "active"}
    assert not _commands(hq_server, "suspend")


def test_bulk_needs_the_session_and_its_csrf_token(hq_server, operator):
    seed_fleet(hq_server.service, 3)
    form = {"csrf": "forged", "action": "revoke", "sites": ["site-00001"], "confirm": "yes"}
    assert operator.post("/fleet/bulk", data=form).status_code == 403
    assert http.post(f"{hq_server.url}/fleet/bulk", data=form, follow_redirects=False).status_code == 401
    assert _statuses(hq_server, ["site-00001"]) == {"site-00001": "active"} and not _commands(hq_server, "revoke")


def test_site_page_shows_licences_commands_with_outcomes_versions_and_alerts(hq_server, operator):
    token = hq_server.issue_licence("xingchen", tier="basic")
    for version in ("0.3.0", "0.3.1", "0.3.1"):
        http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token),
                  json={"version": version, "applied_seq": 0, "health": {"db": "ok"}})
    page = operator.get("/fleet").text
    operator.post("/fleet/sites/xingchen/upgrade", data={"csrf": csrf(page), "tier": "pro"})
    operator.post("/fleet/sites/xingchen/suspend", data={"csrf": csrf(page), "reason": "late fees"})
    http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token),
              json={"version": "0.3.1", "applied_seq": 1, "health": {}})  # the upgrade applied, not the suspension
    detail = operator.get("/fleet/sites/xingchen").text
    licences = re.findall(r'<tr data-jti="[^"]+"( class="current")?><td><code>[^<]+</code>[^<]*(?:<b>[^<]+</b>)?'
                          r'</td><td>(\w+)</td>', detail)
    assert [tier for _, tier in licences] == ["pro", "basic"] and licences[0][0]  # newest first, current marked
    commands = dict(re.findall(r'<tr data-seq="(\d+)" data-type="(\w+)">', detail))
    assert commands == {"2": "suspend", "1": "licence"}
    outcomes = re.findall(r'<td class="outcome">.*?</td>', detail)
    assert "not yet applied" in outcomes[0] and "applied 20" in outcomes[1]
    assert "late fees" in detail and "token" not in detail.split('id="site-commands"')[1].split("</table>")[0].lower()
    versions = re.findall(r"<tr><td>([0-9.]+)</td>", detail.split('id="site-versions"')[1].split("</table>")[0])
    assert versions == ["0.3.1", "0.3.0"]  # a version change adds a row; the same version again does not
    actions = re.findall(r'<tr data-action="([\w.]+)">', detail)
    assert actions[:3] == ["licence.suspend", "licence.upgrade", "licence.issue"]


def test_site_page_refuses_what_is_not_a_site(hq_server, operator):
    seed_fleet(hq_server.service, 3)
    assert operator.get("/fleet/sites/nowhere-1").status_code == 404
    bad = operator.get("/fleet/sites/NOT_A_SITE")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("site:")
    assert operator.get("/fleet/sites/site-00001?x=1").status_code == 400
    assert operator.get("/fleet/sites/site-00001").status_code == 200


def test_the_page_speaks_chinese_when_asked_and_remembers_it(fleet, operator):
    zh = operator.get("/fleet", params={"lang": "zh-CN", "state": "suspended"})
    assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text
    assert "共 40 个分站符合" in zh.text and "已暂停" in zh.text and "分站" in zh.text
    assert 'href="/fleet?state=suspended&amp;lang=en"' in zh.text  # the switch keeps the filters
    again = operator.get("/fleet")
    assert "总部分站管理" in again.text and "Sites" not in again.text.split("<main>")[1].split("<h2>")[0]
    en = operator.get("/fleet", params={"lang": "en"}).text
    assert '<html lang="en">' in en and "400 sites match" in en


def test_issue_records_licensee_and_domain_for_the_search(hq_server, operator):
    r = http.post(f"{hq_server.url}/v1/admin/licences", headers=hq_server.admin_headers(),
                  json={"site": "xingchen", "categories": ["game"], "licensee": "星辰游戏 Ltd", "domain": "shop.xingchen.cn"})
    assert r.status_code == 200, r.text
    bad = http.post(f"{hq_server.url}/v1/admin/licences", headers=hq_server.admin_headers(),
                    json={"site": "moon", "categories": ["game"], "domain": "not a domain"})
    assert bad.status_code == 422 and "domain" in bad.json()["detail"]
    assert listed(operator.get("/fleet", params={"q": "星辰"}).text) == ["xingchen"]
    assert listed(operator.get("/fleet", params={"q": "SHOP.Xingchen"}).text) == ["xingchen"]


QUERIES = [  # (the list's parameters, the index SQLite's plan must name for the page's ids)
    ({"q": "site-0001"}, "ix_sites_id_prefix (id>? AND id<?)"),
    ({"state": "suspended"}, "ix_sites_status (status=?)"),
    ({"version": "0.3.1"}, "ix_sites_version (version=?)"),
    ({"ring": "2"}, "ix_sites_ring (ring=?)"),
    ({"alert": "silent"}, "uq_fleet_alerts_open"),
    ({"sort": "heartbeat", "order": "desc"}, "SCAN sites USING COVERING INDEX ix_sites_heartbeat"),
    ({"sort": "version", "page": "30"}, "SCAN sites USING COVERING INDEX ix_sites_version"),
    ({"sort": "expires", "page": "30"}, "SCAN sites USING COVERING INDEX ix_sites_expires"),
    ({"sort": "expires", "order": "desc"}, "SCAN sites USING COVERING INDEX ix_sites_expires"),
    ({"state": "expired", "sort": "expires"}, "ix_sites_status (status=?)"),
    ({"state": "active"}, "ix_sites_status (status=?)"),
    ({}, "SCAN sites USING COVERING INDEX ix_sites_id_prefix"),
]


def test_the_list_queries_walk_indexes_not_the_table(hq_server):
    """Each filter and sort is served by its index: on SQLite as planned; on PostgreSQL with sequential
    scans priced out (its planner rightly prefers one for a small table), `sites` is never scanned whole."""
    seed_fleet(hq_server.service, 2000)
    dialect = hq_server.service.engine.dialect.name
    with hq_server.service.engine.connect() as conn:
        if dialect == "postgresql":
            conn.execute(text("ANALYZE sites")), conn.execute(text("SET enable_seqscan = off"))
        for params, sqlite_step in QUERIES:
            rows, count = fleet_query.statements(fleet_query.parse(list(params.items())), dialect, utcnow())
            for statement in (rows, count):
                sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
                if dialect == "postgresql":
                    plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
                    assert "Seq Scan on sites" not in plan, (params, plan)
                else:
                    plan = "\n".join(r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
                    assert not re.search(r"SCAN sites(?! USING)", plan), (params, plan)
                    assert statement is count or sqlite_step in plan, (params, plan)
                if statement is count and "tier" not in params:  # the list's ids and count read `sites` alone:
                    assert "licences" not in plan, (params, plan)  # the expiry is its copy (migration 0037)


def test_the_page_names_only_its_own_pages_sites_not_the_whole_fleet(fleet, operator):
    """At 10,000 sites a form listing every site (the settlement's site choice did) was most of the page's time
    and size: the page holds the sites of its page and no other (the settlement form takes a typed site id)."""
    page = operator.get("/fleet", params={"size": "25"}).text
    shown = set(listed(page))
    assert len(shown) == 25
    alerted = {f"site-{i:05d}" for i in range(50, SEEDED, 100)}  # their open alerts are listed above the sites
    others = {f"site-{i:05d}" for i in range(SEEDED)} - shown - alerted
    assert not [site for site in others if site in page]
    assert 'name="site" id="settle-site" required' in page


@pytest.mark.postgres
@pytest.mark.parametrize("sort", ["heartbeat", "version", "ring", "state", "expires"])
def test_a_descending_sort_walks_its_descending_index_on_postgresql(tmp_path, hq_pg_server, sort):
    """`DESC NULLS LAST` is not a backward scan of an ascending index on PostgreSQL: without its own index
    (migration 0030) the page's ids came from sorting every site."""
    from hq.testing import running_hq
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server) as url, running_hq(tmp_path, database_url=url) as hq:
        seed_fleet(hq.service, 2000)
        with hq.service.engine.connect() as conn:
            conn.execute(text("ANALYZE sites")), conn.execute(text("SET enable_seqscan = off"))  # as at 10,000
            query = fleet_query.parse([("sort", sort), ("order", "desc"), ("page", "30")])
            rows, _count = fleet_query.statements(query, "postgresql", utcnow())
            sql = str(rows.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
    assert f"ix_sites_{ {'state': 'status'}.get(sort, sort)}_desc" in plan, plan


def test_the_page_reads_on_one_connection_with_a_bounded_number_of_statements(fleet, operator):
    """Under load each round trip to PostgreSQL waits for a core: the page once checked out a connection per
    section (12) and ran 25 statements. Now one connection (HQ.one_read) and at most 20 for the first page."""
    import threading

    from sqlalchemy import event
    from starlette.requests import Request

    from hq import fleet as fleet_routes
    from hq.session import COOKIE

    engine, me = fleet.service.engine, threading.get_ident()
    checkouts: list[int] = []
    statements: list[str] = []

    def on_checkout(*_args: object) -> None:
        if threading.get_ident() == me:
            checkouts.append(1)

    def on_execute(conn, cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if threading.get_ident() == me and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    cookie = operator.cookies[COOKIE]
    request = Request({"type": "http", "method": "GET", "path": "/fleet", "query_string": b"", "app": fleet.app,
                       "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]})
    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        response = fleet_routes.fleet_page(request, fleet.service)
    finally:
        event.remove(engine.pool, "checkout", on_checkout)
        event.remove(engine, "before_cursor_execute", on_execute)
    assert response.status_code == 200 and b"site-00000" in response.body
    assert len(checkouts) == 1, len(checkouts)
    assert len(statements) <= 20, "\n".join(statements)
