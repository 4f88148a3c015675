"""Every shop page answers HEAD as GET without a body, through the real server (uvicorn).

Monitors and link checkers send HEAD; FastAPI's GET routes alone answer it 405.
"""

from __future__ import annotations

import httpx

from storefront.admin_users import create_admin
from tests.storefront.http import checkout, login

# headers that legitimately differ between two requests (a fresh form token, the time in a CSV's file name)
# or between a streamed body and none (chunked framing)
VARYING = {"date", "set-cookie", "content-disposition", "transfer-encoding"}


def _order_path(base: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as client:
        placed = checkout(client, "G-QQ-100")
    assert placed.status_code == 303, placed.text[:300]
    return placed.headers["location"]


def _pages(base: str) -> dict[str, str]:
    """Route template -> a path that reaches it."""
    order = _order_path(base)
    return {"/": "/", "/p/{sku}": "/p/G-QQ-100", "/order": "/order", "/order/{order_id}": order,
            "/order/{order_id}/status": order.split("?")[0] + "/status",
            "/branding/{name}": "/branding/theme.css", "/healthz": "/healthz", "/admin/login": "/admin/login",
            "/admin/password": "/admin/password", "/admin": "/admin", "/admin/rules": "/admin/rules",
            "/admin/catalog": "/admin/catalog", "/admin/orders": "/admin/orders",
            "/admin/orders.csv": "/admin/orders.csv", "/admin/revenue": "/admin/revenue",
            "/admin/licence": "/admin/licence", "/admin/health": "/admin/health", "/admin/grade": "/admin/grade", "/admin/users": "/admin/users",
            "/admin/coupons": "/admin/coupons", "/admin/settlement": "/admin/settlement",
            "/admin/settlement/{statement_id}": "/admin/settlement/1",  # none issued: 404 to both
            "/admin/settlement/{statement_id}/pdf": "/admin/settlement/1/pdf",  # none issued: 404 to both
            "/admin/payouts": "/admin/payouts", "/admin/audit": "/admin/audit", "/admin/audit.csv": "/admin/audit.csv",
            "/admin/api-keys": "/admin/api-keys"}


def _same_answer(client: httpx.Client, path: str) -> None:
    got, head = client.get(path), client.head(path)
    assert head.status_code == got.status_code != 405, (path, head.status_code, got.status_code)
    assert head.content == b"", path
    differing = {k for k in set(got.headers) | set(head.headers)
                 if k not in VARYING and got.headers.get(k) != head.headers.get(k)}
    if got.headers.get("content-length") != head.headers.get("content-length"):  # pages carrying a fresh token
        assert "set-cookie" in got.headers or "csrf" in got.text, path
        differing.discard("content-length")
    assert not differing, (path, {k: (got.headers.get(k), head.headers.get(k)) for k in differing})


def test_every_get_page_answers_head_as_get_without_a_body(module_site):
    from storefront import branding, shop
    from storefront.admin import routes as admin

    pages = _pages(module_site.base)
    routes = {r.path for router in (shop.router, admin.public, admin.router, branding.router) for r in router.routes
              if "GET" in getattr(r, "methods", ())} | {"/healthz"}
    assert routes == set(pages), "a GET page without a HEAD check: add it to _pages"
    public = httpx.Client(base_url=module_site.base, timeout=30)
    staff = login(module_site.base, "head-owner", create_admin(module_site.db_url, "head-owner", migrate=False))
    for template, path in pages.items():
        _same_answer(staff if template.startswith("/admin") and template != "/admin/login" else public, path)
    _same_answer(public, "/static/app.css")
    _same_answer(public, "/admin")  # not logged in: the redirect to the login page, also for HEAD


def test_head_of_a_post_only_path_is_refused_as_its_get_is(module_site):
    with httpx.Client(base_url=module_site.base, timeout=30) as client:
        assert client.head("/p/G-QQ-100/checkout").status_code == client.get("/p/G-QQ-100/checkout").status_code == 405
