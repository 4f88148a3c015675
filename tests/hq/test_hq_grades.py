"""Grades and ranking over HTTP (admin API, fleet page, CSV) on SQLite and PostgreSQL: sites ranked by the
orders HQ decided and the alerts their heartbeats raised, trend over months, and each suggestion carried
out with one action (upgrade, warn, timed suspension)."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select

from hq import grades
from hq.models import AuditEvent, FleetAlert, Licence, Order, Site
from hq.testing import RunningHQ
from tests.hq.helpers import auth

MONTHS = ("2026-07", "2026-08", "2026-09", "2026-10")


def _at(period: str, day: int = 10) -> datetime:
    return datetime(int(period[:4]), int(period[5:]), day, 12, tzinfo=timezone.utc)


def _orders(hq: RunningHQ, site: str, period: str, n: int, *, cents: int = 100_000, status: str = "delivered",
            buyers: int | None = None) -> None:
    at = _at(period)
    with hq.service.session() as s:
        for i in range(n):
            s.add(Order(hq_order_id=f"hq_{site}_{period}_{status}_{i}", site_id=site, order_id=f"{period}-{status}-{i}",
                        request_sha256="0" * 64, sku="card-1", quantity=1, unit_price_cents=cents, currency="CNY",
                        buyer_contact=f"buyer{i % (buyers or n)}@example.cn", site_created_at=at, received_at=at,
                        decision="approve" if status == "delivered" else "reject", status=status, reasons=[]))


@pytest.fixture
def graded(hq_server: RunningHQ) -> RunningHQ:
    """star: big, repeat buyers, every month → A, A; steady: middling → B/C; poor: rejections and silence → D, D."""
    hq_server.site_tokens = {site: hq_server.issue_licence(site, tier=tier)  # type: ignore[attr-defined]
                             for site, tier in (("star", "basic"), ("steady", "pro"), ("poor", "pro"))}
    with hq_server.service.session() as s:
        for site in ("star", "steady", "poor"):
            s.get(Site, site).created_at = _at("2026-01")
    for period in MONTHS:
        _orders(hq_server, "star", period, 60, cents=100_000, buyers=20)
        _orders(hq_server, "steady", period, 20, cents=50_000, buyers=18)
        _orders(hq_server, "poor", period, 2, cents=1_000)
        _orders(hq_server, "poor", period, 8, status="rejected")
    with hq_server.service.session() as s:  # poor was silent half of September and all of October
        s.add(FleetAlert(site_id="poor", kind="silent", state="resolved", severity="critical", summary="x",
                         opened_at=_at("2026-09", 1), last_seen_at=_at("2026-09", 16), resolved_at=_at("2026-09", 16)))
        s.add(FleetAlert(site_id="poor", kind="silent", state="firing", severity="critical", summary="x",
                         opened_at=_at("2026-10", 1) - timedelta(hours=12), last_seen_at=_at("2026-10", 20)))
    return hq_server


def _ranking(hq: RunningHQ, period: str) -> list[dict]:
    answer = httpx.get(f"{hq.url}/v1/admin/grades", params={"period": period}, headers=hq.admin_headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_sites_are_ranked_with_trend_and_suggestions(graded) -> None:  # type: ignore[no-untyped-def]
    rows = _ranking(graded, "2026-10")
    assert [r["site"] for r in rows] == ["star", "steady", "poor"] and [r["rank"] for r in rows] == [1, 2, 3]
    star, steady, poor = rows
    assert star["grade"] == "A" and star["trend"][-2:] == ["A", "A"]
    assert star["metrics"]["repurchase_rate"] == 1.0 and star["metrics"]["buyers"] == 20
    assert star["metrics"]["gmv_cents"] == 60 * 100_000 and star["metrics"]["growth"] == 0.0
    assert star["suggestion"] == {"action": "upgrade", "tier": "pro", "why": "graded A 2 periods in a row"}
    assert poor["grade"] == "D" and poor["metrics"]["rejection_rate"] == 0.8 and poor["metrics"]["uptime"] == 0.0
    assert poor["suggestion"]["action"] == "suspend" and poor["suggestion"]["days"] == 7
    assert steady["grade"] in ("B", "C") and steady["suggestion"] is None
    assert "gmv_cents" in steady["raise"] or "repurchase_rate" in steady["raise"]
    july = _ranking(graded, "2026-07")  # no earlier months with orders: growth undefined, trend from empty months
    assert july[0]["metrics"]["growth"] is None and july[0]["trend"][:3] == [g for g in july[0]["trend"][:3]]
    text = httpx.get(f"{graded.url}/v1/admin/grades/csv", params={"period": "2026-10"},
                     headers=graded.admin_headers()).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["site"] for r in table] == ["star", "steady", "poor"] and table[0]["suggestion"] == "upgrade"
    assert table[2]["rejection_rate"] == "0.8000" and "@" not in text


def test_each_suggestion_is_one_action(graded) -> None:  # type: ignore[no-untyped-def]
    act = lambda site: httpx.post(f"{graded.url}/v1/admin/grades/{site}/act", params={"period": "2026-10"},  # noqa: E731
                                  headers=graded.admin_headers(), timeout=30)
    upgraded = act("star")
    assert upgraded.status_code == 200 and upgraded.json()["done"]["action"] == "upgrade"
    suspended = act("poor")
    assert suspended.status_code == 200 and suspended.json()["done"]["action"] == "suspend"
    nothing = act("steady")
    assert nothing.status_code == 409 and nothing.json()["error"] == "nothing_to_do"
    assert act("nobody").status_code == 404
    with graded.service.session() as s:
        star, poor = s.get(Site, "star"), s.get(Site, "poor")
        assert s.get(Licence, star.current_jti).tier == "pro"
        assert poor.status == "suspended" and poor.suspended_until is not None
        actions = [a.action for a in s.scalars(select(AuditEvent).where(AuditEvent.action.like("grading.%")))]
    assert actions == ["grading.upgrade", "grading.suspend"]
    assert act("poor").status_code == 409  # suspended now: nothing more to suggest


def test_a_d_before_the_line_is_a_warning(graded) -> None:  # type: ignore[no-untyped-def]
    poor = {r["site"]: r for r in _ranking(graded, "2026-09")}["poor"]  # half the month silent: its first D
    assert poor["trend"][-2:] == ["C", "D"] and poor["suggestion"] == {"action": "warn", "why": "graded D this period"}
    done = httpx.post(f"{graded.url}/v1/admin/grades/poor/act", params={"period": "2026-09"},
                      headers=graded.admin_headers())
    assert done.status_code == 200 and done.json()["done"]["action"] == "warn"
    with graded.service.session() as s:
        [warned] = s.scalars(select(AuditEvent).where(AuditEvent.action == "grading.warn")).all()
        assert warned.site_id == "poor" and warned.detail["period"] == "2026-09"
        assert s.get(Site, "poor").status == "active"  # a warning, no sanction
    with httpx.Client(base_url=graded.url, timeout=30, follow_redirects=False) as client:
        assert client.post("/fleet/login", data={"token": graded.operator_token}).status_code == 303
        assert "grading.warn" in client.get("/fleet/sites/poor").text  # on the site's record


def test_bad_input_is_one_line_and_changes_nothing(graded) -> None:  # type: ignore[no-untyped-def]
    h = graded.admin_headers()
    for period in ("2026-13", "26-10", "2026-10\n", "x"):
        answer = httpx.get(f"{graded.url}/v1/admin/grades", params={"period": period}, headers=h)
        assert answer.status_code == 422 and "\n" not in answer.json()["detail"]
    config = httpx.get(f"{graded.url}/v1/admin/grades/config", headers=h).json()
    broken = {**config, "grades": {"A": 10, "B": 60, "C": 40, "D": 0}}
    refused = httpx.put(f"{graded.url}/v1/admin/grades/config", headers=h, json=broken)
    assert refused.status_code == 422 and "A > B > C > D = 0" in refused.json()["detail"]
    assert httpx.get(f"{graded.url}/v1/admin/grades/config", headers=h).json() == config
    stricter = {**config, "grades": {"A": 99.0, "B": 98.0, "C": 97.0, "D": 0.0}}
    assert httpx.put(f"{graded.url}/v1/admin/grades/config", headers=h, json=stricter).status_code == 200
    assert _ranking(graded, "2026-10")[0]["grade"] != "A"  # the thresholds are the configured ones
    assert httpx.get(f"{graded.url}/v1/admin/grades", headers=auth("nope")).status_code == 401


def test_the_fleet_grades_page_ranks_exports_and_acts(graded) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=graded.url, timeout=30, follow_redirects=False) as client:
        assert client.get("/fleet/grades").status_code == 303  # not logged in
        assert client.post("/fleet/login", data={"token": graded.operator_token}).status_code == 303
        page = client.get("/fleet/grades", params={"period": "2026-10"}).text
        assert re.findall(r'<tr data-site="([^"]+)" data-grade="([A-D])">', page)[:3] == [
            ("star", "A"), ("steady", rows_grade(graded, "steady")), ("poor", "D")]
        assert "A → A" in page and 'data-action="upgrade"' in page and 'data-action="suspend"' in page
        assert "/fleet/grades" in client.get("/fleet").text
        exported = client.get("/fleet/grades.csv", params={"period": "2026-10"})
        assert exported.status_code == 200 and exported.text.startswith("rank,site,tier,status,grade")
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        forged = client.post("/fleet/grades/star/act", data={"csrf": "x" * 20, "period": "2026-10"})
        assert forged.status_code == 403
        done = client.post("/fleet/grades/star/act", data={"csrf": token, "period": "2026-10"})
        assert done.status_code == 303 and "upgrade%20done" in done.headers["location"]
        again = client.post("/fleet/grades/star/act", data={"csrf": token, "period": "2026-10"})
        assert "nothing%20suggested" in again.headers["location"]  # one action per site and month: no double upgrade
    with graded.service.session() as s:
        assert s.get(Licence, s.get(Site, "star").current_jti).tier == "pro"


def rows_grade(hq: RunningHQ, site: str) -> str:
    return next(r["grade"] for r in grades.ranking(hq.service, "2026-10") if r["site"] == site)


def test_a_site_reads_its_own_grade_and_only_its_own(graded) -> None:  # type: ignore[no-untyped-def]
    tokens = graded.site_tokens
    ranked = {r["site"]: r for r in _ranking(graded, "2026-10")}
    for site in ("star", "steady", "poor"):
        answer = httpx.get(f"{graded.url}/v1/grade", params={"period": "2026-10"}, headers=auth(tokens[site]))
        assert answer.status_code == 200, answer.text
        own = answer.json()
        assert own["site"] == site and own["grade"] == ranked[site]["grade"] and own["score"] == ranked[site]["score"]
        assert own["trend"] == ranked[site]["trend"] and own["metrics"] == ranked[site]["metrics"]
        assert own["grades"] == {"A": 80.0, "B": 60.0, "C": 40.0, "D": 0.0} and set(own["scales"]) >= {"uptime"}
    poor = httpx.get(f"{graded.url}/v1/grade", params={"period": "2026-10"}, headers=auth(tokens["poor"])).json()
    assert poor["next"]["next_grade"] == "C" and poor["next"]["points_needed"] > 0
    assert "star" not in httpx.get(f"{graded.url}/v1/grade", params={"period": "2026-10"},
                                   headers=auth(tokens["poor"])).text  # no other site's name or figures
    for headers in ({}, auth("nope"), auth(tokens["star"][:-4] + "AAAA"), graded.admin_headers()):
        refused = httpx.get(f"{graded.url}/v1/grade", headers=headers)
        assert refused.status_code == 401 and "\n" not in refused.json()["detail"]
    assert httpx.get(f"{graded.url}/v1/grade", params={"period": "2026-13"},
                     headers=auth(tokens["star"])).status_code == 422
    graded.revoke("steady")
    assert httpx.get(f"{graded.url}/v1/grade", headers=auth(tokens["steady"])).status_code == 403
