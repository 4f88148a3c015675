"""The fleet page in headless Chromium: login, every site's state, actions with CSRF, reviews."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.support.browser import CHROMIUM, chromium
from tests.hq.helpers import auth, http, order, post_orders

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [pytest.mark.browser]


@pytest.fixture
def browser():
    require(CHROMIUM.exists(), "Debian chromium is not installed")
    with chromium() as b:
        yield b


def _populate(hq) -> str:
    hq.seed_item("game-100")
    hq.seed_card_keys("game-100", 3)
    star = hq.issue_licence("xingchen", tier="pro", categories=["game", "phone"])
    moon = hq.issue_licence("moonlight", tier="basic", categories=["game"])
    hq.issue_licence("sunrise", tier="flagship", categories=["game", "video", "software"])
    http.post(f"{hq.url}/v1/heartbeat", headers=auth(star),
              json={"version": "0.3.1", "applied_seq": 0, "health": {"db": "ok", "queue": 0}})
    http.post(f"{hq.url}/v1/heartbeat", headers=auth(moon), json={"version": "0.3.0", "applied_seq": 0,
                                                                  "health": {"db": "degraded"}})
    post_orders(hq, star, "k1", [order("o-1"), order("o-big", unit_price_cents=180_000, account="whale-77")])
    return star


def test_fleet_page_login_actions_and_reviews(sqlite_hq, browser):
    hq = sqlite_hq
    star_token = _populate(hq)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{hq.url}/fleet")
    assert page.url.endswith("/fleet/login")
    page.fill("#token", "hqop_wrong")
    page.click("button[type=submit]")
    assert "not recognised" in page.inner_text(".flash.err")
    page.fill("#token", hq.operator_token)
    page.click("button[type=submit]")
    page.wait_for_selector("#sites")
    rows = {r.get_attribute("data-site"): r for r in page.query_selector_all("#sites tbody tr")}
    assert set(rows) == {"xingchen", "moonlight", "sunrise"}
    star = rows["xingchen"].inner_text()
    assert "active" in star and "pro" in star and "0.3.1" in star and "database ok" in star  # a badge, not "db: ok"
    assert "never" in rows["sunrise"].inner_text()
    assert "1" in page.inner_text("#reviews tbody") and "whale-77" in page.inner_text("#reviews tbody")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hq-fleet.png"), full_page=True)

    # suspend and resume moonlight, upgrade sunrise... then revoke xingchen with a reason
    page.click("tr[data-site=moonlight] form[action$='/suspend'] button")
    assert "moonlight: suspend done" in page.inner_text(".flash.ok")
    assert "suspended" in page.inner_text("tr[data-site=moonlight]")
    page.select_option("tr[data-site=moonlight] select[name=tier]", "pro")
    page.click("tr[data-site=moonlight] form[action$='/upgrade'] button")
    assert "pro" in page.inner_text("tr[data-site=moonlight]")
    page.fill("tr[data-site=xingchen] input[type=text][name=reason]", "chargebacks")
    page.click("tr[data-site=xingchen] form[action$='/revoke'] button")
    assert "revoked" in page.inner_text("tr[data-site=xingchen]") and "chargebacks" in page.inner_text("tr[data-site=xingchen]")
    r = http.get(f"{hq.url}/v1/catalog", headers=auth(star_token))
    assert r.status_code == 403 and "chargebacks" in r.json()["detail"]

    # approve the review from the page: the order is delivered
    page.click("#reviews form[action$='/approve'] button")
    assert "delivered" in page.inner_text(".flash.ok")
    assert "Nothing waiting for review" in page.inner_text("#reviews")
    page.screenshot(path=str(ARTIFACTS / "hq-fleet-after-actions.png"), full_page=True)
    audit = http.get(f"{hq.url}/v1/admin/audit", headers=hq.admin_headers()).json()
    assert {"licence.suspend", "licence.upgrade", "licence.revoke", "review.approve"} <= {e["action"] for e in audit}
    assert all(e["operator"] == "tester" for e in audit if e["action"] in ("licence.revoke", "review.approve"))


def test_forms_without_the_session_csrf_token_are_refused(sqlite_hq):
    hq = sqlite_hq
    hq.issue_licence("xingchen")
    c = httpx.Client(timeout=30)  # its own client: the login cookie must not leak into other tests
    r = c.post(f"{hq.url}/fleet/sites/xingchen/revoke", data={"csrf": "x", "reason": "forged"}, follow_redirects=False)
    assert r.status_code == 401
    login = c.post(f"{hq.url}/fleet/login", data={"token": hq.operator_token}, follow_redirects=False)
    cookie = login.cookies.get("hq_session")
    assert login.status_code == 303 and cookie
    assert "httponly" in login.headers["set-cookie"].lower() and "samesite=strict" in login.headers["set-cookie"].lower()
    r = c.post(f"{hq.url}/fleet/sites/xingchen/revoke", data={"csrf": "forged", "reason": "forged"},
               headers={"Cookie": f"hq_session={cookie}"}, follow_redirects=False)
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    tampered = cookie[:-3] + ("abc" if not cookie.endswith("abc") else "xyz")
    assert c.get(f"{hq.url}/fleet", headers={"Cookie": f"hq_session={tampered}"}, follow_redirects=False).status_code == 303
    sites = http.get(f"{hq.url}/v1/admin/sites", headers=hq.admin_headers()).json()
    assert sites[0]["status"] == "active"
