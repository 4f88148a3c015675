"""Sessions end when they should: logout, disable, delete, password reset or change, operator rotation.

Before, logout only deleted the cookie in the browser (a copy kept working),
HQ operators could not be disabled or rotated, and shop staff could not be
disabled, deleted or reset. Every one of these now ends the sessions
server-side, at once, and is audited.
"""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from sitedb.engine import make_engine
from sitedb.tables import admin_users
from tests.storefront.http import form_token

ADMIN_COOKIE = "kit_admin"


def _user_id(shop, username: str) -> int:
    engine = make_engine(shop.db_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(admin_users.c.id).where(admin_users.c.username == username)))
    finally:
        engine.dispose()


def _with_cookie(shop, cookie: str, ip: str = "198.51.100.9"):  # type: ignore[no-untyped-def]
    client = shop.client(ip)
    client.cookies.set(ADMIN_COOKIE, cookie)
    return client


def _post(client, path: str, **data: str):  # type: ignore[no-untyped-def]
    token = form_token(client.get("/admin").text)
    return client.post(path, data={"csrf": token, **data})


# -- the shop admin --------------------------------------------------------------

def test_a_copied_admin_cookie_stops_working_after_logout(shop):
    client = shop.login("owner", shop.add_staff("owner"))
    copied = client.cookies.get(ADMIN_COOKIE)
    assert _post(client, "/admin/logout").status_code == 303
    stale = _with_cookie(shop, copied)
    assert stale.get("/admin").status_code == 303  # to the login page
    assert stale.post("/admin/rules/1/delete", data={"csrf": "x"}).status_code in (303, 403)
    assert stale.get("/admin/users").status_code == 303


@pytest.mark.parametrize("action", ["disable", "delete", "reset-password"])
def test_an_admin_ends_another_staff_members_sessions(shop, action):
    admin = shop.login("owner", shop.add_staff("owner"))
    clerk_password = shop.add_staff("clerk", role="operator")
    clerk = shop.login("clerk", clerk_password, ip="198.51.100.20")
    assert clerk.get("/admin").status_code == 200
    resp = _post(admin, f"/admin/users/{_user_id(shop, 'clerk')}/{action}")
    assert resp.status_code == 200, resp.text[:300]
    assert clerk.get("/admin").status_code == 303
    assert shop.attempt(shop.client("198.51.100.21"), "clerk", clerk_password).status_code == 401
    if action == "reset-password":
        new = re.search(r'id="new-password">([^<]+)<', resp.text).group(1)
        assert shop.attempt(shop.client("198.51.100.21"), "clerk", new).status_code == 303
    expected = {"disable": "admin_user_disabled", "delete": "admin_user_deleted",
                "reset-password": "admin_user_password_reset"}[action]
    assert expected in shop.audit_actions()


def test_a_disabled_account_can_be_enabled_again(shop):
    admin = shop.login("owner", shop.add_staff("owner"))
    password = shop.add_staff("clerk", role="finance")
    clerk_id = _user_id(shop, "clerk")
    _post(admin, f"/admin/users/{clerk_id}/disable")
    assert shop.attempt(shop.client("198.51.100.30"), "clerk", password).status_code == 401
    _post(admin, f"/admin/users/{clerk_id}/enable")
    assert shop.attempt(shop.client("198.51.100.31"), "clerk", password).status_code == 303


def test_changing_ones_own_password_ends_every_session(shop):
    password = shop.add_staff("clerk", role="finance")
    here = shop.login("clerk", password)
    elsewhere = shop.login("clerk", password, ip="198.51.100.40")
    assert _post(here, "/admin/password", current="wrong", new="n" * 12, repeat="n" * 12).status_code == 422
    assert _post(here, "/admin/password", current=password, new="short", repeat="short").status_code == 422
    resp = _post(here, "/admin/password", current=password, new="a-new-password-1", repeat="a-new-password-1")
    assert resp.status_code == 303
    assert here.get("/admin").status_code == 303 and elsewhere.get("/admin").status_code == 303
    assert shop.attempt(shop.client("198.51.100.41"), "clerk", password).status_code == 401
    assert shop.attempt(shop.client("198.51.100.42"), "clerk", "a-new-password-1").status_code == 303
    assert "admin_user_password_changed" in shop.audit_actions()


def test_the_last_admin_cannot_be_disabled_and_nobody_disables_themselves(shop):
    admin = shop.login("owner", shop.add_staff("owner"))
    owner_id = _user_id(shop, "owner")
    assert _post(admin, f"/admin/users/{owner_id}/disable").status_code == 422
    assert admin.get("/admin").status_code == 200
    second = shop.login("second", shop.add_staff("second"), ip="198.51.100.50")
    assert _post(second, f"/admin/users/{owner_id}/disable").status_code == 200
    assert _post(second, f"/admin/users/{_user_id(shop, 'second')}/delete").status_code == 422


# -- the HQ fleet page and operators ------------------------------------------------

def _fleet_login(hq, token: str) -> tuple[httpx.Client, str, str]:
    client = httpx.Client(base_url=hq.url, timeout=30, follow_redirects=False)
    resp = client.post("/fleet/login", data={"token": token})
    assert resp.status_code == 303 and resp.headers["location"] == "/fleet"
    cookie = client.cookies.get("hq_session")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/fleet").text).group(1)
    return client, cookie, csrf


def test_a_copied_fleet_cookie_stops_working_after_logout(served_hq):
    served_hq.issue_licence("stale-cookie")
    client, cookie, csrf = _fleet_login(served_hq, served_hq.operator_token)
    assert client.post("/fleet/logout", data={"csrf": csrf}).status_code == 303
    stale = httpx.Client(base_url=served_hq.url, timeout=30, follow_redirects=False, cookies={"hq_session": cookie})
    resp = stale.post("/fleet/sites/stale-cookie/suspend", data={"csrf": csrf, "reason": "after logout"})
    assert resp.status_code == 401
    sites = httpx.get(f"{served_hq.url}/v1/admin/sites", headers=served_hq.admin_headers()).json()
    assert [s["status"] for s in sites if s["site"] == "stale-cookie"] == ["active"]


def test_disabling_an_operator_ends_their_sessions_and_token(served_hq):
    from hq import operators

    token = operators.add(served_hq.service, "leaver")
    client, _, _ = _fleet_login(served_hq, token)
    assert operators.disable(served_hq.service, "leaver", by="test") == 1
    assert client.get("/fleet").status_code == 303
    assert httpx.get(f"{served_hq.url}/v1/admin/sites", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert httpx.post(f"{served_hq.url}/fleet/login", data={"token": token}).headers["location"].startswith("/fleet/login")


def test_rotating_an_operator_replaces_the_token_and_ends_sessions(served_hq):
    from hq import operators

    old = operators.add(served_hq.service, "rotor")
    client, _, _ = _fleet_login(served_hq, old)
    new = operators.rotate(served_hq.service, "rotor", by="test")
    assert client.get("/fleet").status_code == 303
    auth = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
    assert httpx.get(f"{served_hq.url}/v1/admin/sites", headers=auth(old)).status_code == 401
    assert httpx.get(f"{served_hq.url}/v1/admin/sites", headers=auth(new)).status_code == 200
    audit = httpx.get(f"{served_hq.url}/v1/admin/audit", headers=auth(new)).json()
    assert {"operator.rotate", "operator.add"} <= {e["action"] for e in audit}


def test_operators_disable_and_rotate_from_the_cli(tmp_path, monkeypatch, capsys):
    from kitctl.cli import run

    monkeypatch.setenv("KITCTL_HQ_DIR", str(tmp_path / "hq"))
    assert run(["hq", "keys", "init"]) == 0
    assert run(["hq", "operators", "add", "ops"]) == 0
    first = capsys.readouterr().out.strip()
    assert run(["hq", "operators", "rotate", "ops"]) == 0
    second = capsys.readouterr().out.strip()
    assert second.startswith("hqop_") and second != first
    assert run(["hq", "operators", "disable", "ops"]) == 0
    capsys.readouterr()
    assert run(["hq", "operators", "disable", "ops"]) == 2
    assert "already disabled" in capsys.readouterr().err
    assert run(["hq", "operators", "rotate", "nobody"]) == 2
    assert run(["hq", "operators", "list", "--json"]) == 0
    assert '"disabled": true' in capsys.readouterr().out
