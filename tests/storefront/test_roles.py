"""Every admin route × every role, against the running server: the access table is enforced, not just menus.

The expected matrix is written out here, from the roles the sub-site has
(administrator: goods, orders, users; operator: data and marketing, no
finance; finance: withdrawals and reconciliation, no listing), never read
from ROUTE_ROLES: a change to the table must change this file too.
"""

from __future__ import annotations

import re

import httpx
import pytest

from storefront.admin.auth import ROUTE_ROLES, Staff, least_role, may
from storefront.admin.routes import router
from storefront.admin_users import ROLES, create_admin
from tests.storefront.http import form_token, login

ROUTES = [(route.name, route.path, sorted(route.methods)[0]) for route in router.routes]

A, O, F = "admin", "operator", "finance"
EXPECTED: dict[str, set[str]] = {
    "admin_dashboard": {A, O, F},
    "admin_logout": {A, O, F},
    "admin_orders": {A, O, F},
    "admin_rules": {A, O},
    "admin_rules_submit": {A, O},
    "admin_rules_delete": {A, O},
    "admin_catalog": {A, O},
    "admin_health": {A, O},
    "admin_grade": {A, O, F},  # the shop's grade: each role moves some of its metrics
    "admin_orders_csv": {A, F},
    "admin_revenue": {A, F},
    "admin_licence": {A, F},
    "admin_settlement": {A, F},  # reconciliation: finance, never the operator
    "admin_settlement_statement": {A, F},
    "admin_settlement_pdf": {A, F},
    "admin_settlement_confirm": {A, F},
    "admin_settlement_dispute": {A, F},
    "admin_payouts": {A, F},  # withdrawals: finance, never the operator
    "admin_payouts_request": {A, F},
    "admin_coupons": {A, O},  # marketing
    "admin_coupons_create": {A, O},
    "admin_coupons_disable": {A, O},
    "admin_coupons_enable": {A, O},
    "admin_users": {A},
    "admin_users_create": {A},
    "admin_users_disable": {A},
    "admin_users_enable": {A},
    "admin_users_delete": {A},
    "admin_users_reset": {A},
    "admin_audit": {A},  # the operation log: the administrator's oversight
    "admin_audit_csv": {A},
    "admin_api_keys": {A},  # reseller API keys
    "admin_api_keys_create": {A},
    "admin_api_keys_rotate": {A},
    "admin_api_keys_revoke": {A},
    "admin_password": {A, O, F},  # everyone changes their own password
    "admin_password_submit": {A, O, F},
}


def test_every_admin_route_is_in_the_access_table():
    assert {name for name, _, _ in ROUTES} == set(ROUTE_ROLES) == set(EXPECTED)
    assert set(ROLES) == {A, O, F}


def test_the_access_table_is_the_expected_matrix():
    assert {name: set(roles) for name, roles in ROUTE_ROLES.items()} == EXPECTED


def test_a_new_account_gets_the_role_that_opens_the_fewest_pages():
    """Counted in EXPECTED: the operator opens 15 pages, finance 16, the admin all 37; least privilege by default."""
    assert {role: sum(role in roles for roles in EXPECTED.values()) for role in ROLES} == {A: 37, O: 15, F: 16}
    assert least_role() == O


@pytest.mark.parametrize("role", [A, O, F])
def test_menus_offer_exactly_the_permitted_pages(role):
    staff = Staff(id=1, username="someone", role=role)
    assert {name for name in EXPECTED if may(staff, name)} == {name for name, roles in EXPECTED.items() if role in roles}
    assert not may(staff, "no_such_route")  # default deny
    assert not may(Staff(id=2, username="ghost", role="owner"), "admin_dashboard")


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "999", path)


@pytest.fixture(scope="module")
def clients(module_site):  # type: ignore[no-untyped-def]
    made = {role: login(module_site.base, f"staff-{role}", create_admin(module_site.db_url, f"staff-{role}", role=role, migrate=False))
            for role in ROLES}
    yield made
    for client in made.values():
        client.close()


def test_each_route_allows_exactly_its_roles(module_site, clients):
    anonymous = httpx.Client(base_url=module_site.base, timeout=30)
    for name, path, method in ROUTES:
        url = _concrete(path)
        if method == "GET":
            r = anonymous.get(url)
            assert r.status_code == 303 and r.headers["location"] == "/admin/login", (name, r.status_code)
        for role, client in clients.items():
            if method == "GET":
                r = client.get(url)
            else:
                token = form_token(client.get("/admin/login").text)
                if name == "admin_logout":
                    continue  # exercised below; it would end the session the loop relies on
                r = client.post(url, data={"csrf": token})
            allowed = role in EXPECTED[name]
            if allowed:
                assert r.status_code in (200, 303, 404, 409, 422), (name, role, r.status_code)  # 409: a feature the licence lacks
            else:
                assert r.status_code == 403, (name, role, r.status_code)
                assert "你没有权限访问这个页面" in r.text


def test_menu_shows_only_permitted_pages(clients):
    page = clients["finance"].get("/admin").text
    assert "/admin/revenue" in page and "/admin/rules" not in page
    page = clients["operator"].get("/admin").text
    assert "/admin/rules" in page and "/admin/revenue" not in page and "/admin/orders.csv" not in page


def test_finance_exports_csv_and_operator_cannot(clients):
    r = clients["finance"].get("/admin/orders.csv")
    assert r.status_code == 200 and r.text.lstrip("\ufeff").startswith("id,created_at,status")
    assert clients["operator"].get("/admin/orders.csv").status_code == 403


def test_logout_ends_the_session(module_site):
    password = create_admin(module_site.db_url, "leaving", role="operator", migrate=False)
    client = login(module_site.base, "leaving", password)
    token = form_token(client.get("/admin").text)
    assert client.post("/admin/logout", data={"csrf": token}).status_code == 303
    assert client.get("/admin").status_code == 303


def test_tampered_session_cookie_is_refused(module_site, clients):
    cookie = clients["finance"].cookies.get("kit_admin")
    forged = httpx.Client(base_url=module_site.base, cookies={"kit_admin": cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB")})
    assert forged.get("/admin").status_code == 303


@pytest.mark.filterwarnings("ignore:.*httpx.*")
def test_each_route_allows_exactly_its_roles_in_process(tmp_path):
    """The same walk through the ASGI app in this process (no server): every route × role, and no session."""
    from tests.storefront.support import seed
    from tests.storefront.test_app_inprocess import _app

    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    passwords = {role: create_admin(url, f"staff-{role}", role=role, migrate=False) for role in ROLES}
    clients = {}
    for role in ROLES:
        client, _ = _app(tmp_path / role, url)
        token = form_token(client.get("/admin/login").text)
        r = client.post("/admin/login", data={"csrf": token, "username": f"staff-{role}", "password": passwords[role]})
        assert r.status_code == 303
        session = next(c for c in r.headers.get_list("set-cookie") if c.startswith("kit_admin="))
        assert "max-age=28800" in session.lower()  # a staff session lasts a working day: 8 hours
        clients[role] = client
    anonymous, _ = _app(tmp_path / "anonymous", url)
    for name, path, method in ROUTES:
        if name == "admin_logout":
            continue
        url_path = _concrete(path)
        if method == "GET":
            r = anonymous.get(url_path)
            assert r.status_code == 303 and r.headers["location"] == "/admin/login", name
        for role, client in clients.items():
            if method == "GET":
                r = client.get(url_path)
            else:
                r = client.post(url_path, data={"csrf": form_token(client.get("/admin/login").text)})
            if role in EXPECTED[name]:
                assert r.status_code in (200, 303, 404, 409, 422), (name, role, r.status_code)  # 409: a feature the licence lacks
            else:
                assert r.status_code == 403, (name, role, r.status_code)


def _request(route_name: str | None):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from starlette.requests import Request

    route = SimpleNamespace(name=route_name) if route_name is not None else None
    return Request({"type": "http", "method": "GET", "path": "/admin/x", "headers": [], "route": route})


@pytest.mark.parametrize("route_name", [None, "", "admin_unlisted", "admin_users_export"])
def test_a_route_missing_from_the_table_is_refused_to_everyone(monkeypatch, route_name):
    from storefront.admin import auth
    from storefront.web import HTTPProblem

    monkeypatch.setattr(auth, "current_staff", lambda request: Staff(id=1, username="boss", role="admin"))
    with pytest.raises(HTTPProblem) as refused:
        auth.require_role(_request(route_name))
    assert (refused.value.status, refused.value.message_key) == (403, "err.forbidden")


def test_require_role_hands_the_staff_member_to_the_route(monkeypatch):
    from storefront.admin import auth

    member = Staff(id=7, username="fin", role="finance")
    monkeypatch.setattr(auth, "current_staff", lambda request: member)
    request = _request("admin_revenue")
    assert auth.require_role(request) is member and request.state.staff is member
    with pytest.raises(Exception) as refused:
        auth.require_role(_request("admin_users"))
    assert getattr(refused.value, "status", None) == 403
    monkeypatch.setattr(auth, "current_staff", lambda request: None)
    with pytest.raises(auth.LoginRequired):
        auth.require_role(_request("admin_dashboard"))


@pytest.mark.filterwarnings("ignore:.*httpx.*")
def test_a_session_ends_with_a_reset_password_a_removed_user_or_a_forged_cookie(tmp_path):
    from sqlalchemy import select

    from sitedb.models import AdminUser
    from storefront.admin_users import delete_user, reset_password
    from tests.storefront.support import seed
    from tests.storefront.test_app_inprocess import _app

    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, shop = _app(tmp_path / "site", url)
    passwords = {name: create_admin(url, name, role="admin", migrate=False) for name in ("alice", "bob", "carol")}
    cookies = {}
    for name, password in passwords.items():
        client.cookies.clear()
        token = form_token(client.get("/admin/login").text)
        assert client.post("/admin/login", data={"csrf": token, "username": name, "password": password}).status_code == 303
        cookies[name] = client.cookies.get("kit_admin")

    def opens_dashboard(cookie: str) -> bool:
        client.cookies.clear()
        client.cookies.set("kit_admin", cookie)
        r = client.get("/admin")
        assert r.status_code in (200, 303)
        return r.status_code == 200

    assert all(opens_dashboard(c) for c in cookies.values())
    with shop.sessions.begin() as s:
        ids = {u.username: u.id for u in s.scalars(select(AdminUser))}
        reset_password(s, ids["alice"], "carol")
        delete_user(s, ids["bob"], "carol")
    assert not opens_dashboard(cookies["alice"])  # a new password ends every session of the account
    assert not opens_dashboard(cookies["bob"])  # the account is gone
    assert opens_dashboard(cookies["carol"])
    assert not opens_dashboard(cookies["carol"][:-2] + ("AA" if cookies["carol"][-2:] != "AA" else "BB"))
    assert not opens_dashboard("x" * 43)
