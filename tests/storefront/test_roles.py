"""Every admin route × every role, against the running server: the access table is enforced, not just menus."""

from __future__ import annotations

import re

import httpx
import pytest

from storefront.admin.auth import ROUTE_ROLES
from storefront.admin.routes import router
from storefront.admin_users import ROLES, create_admin
from tests.storefront.http import form_token, login

ROUTES = [(route.name, route.path, sorted(route.methods)[0]) for route in router.routes]


def test_every_admin_route_is_in_the_access_table():
    assert {name for name, _, _ in ROUTES} == set(ROUTE_ROLES)


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
            allowed = role in ROUTE_ROLES[name]
            if allowed:
                assert r.status_code in (200, 303, 404, 422), (name, role, r.status_code)
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
