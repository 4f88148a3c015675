"""Every page of the shop and the admin, rendered in zh-CN, shows no English (through the ASGI app in-process).

The pages walked are the routers' GET routes, so a page added later is walked too
(or this test names it); each is opened by an admin and by the role that sees the
least, with data on it: orders decided by HQ, audit entries, the agent's health.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, update

from sitedb.engine import make_engine
from sitedb.tables import audit_log, orders, site_grade
from storefront.admin_users import create_admin
from tests.storefront.http import form_token
from tests.storefront.support import seed, update_site_state
from tests.storefront.test_app_inprocess import _app, _submit
from tests.storefront.untranslated import ALLOWED, english_words

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")

NOT_PAGES = {"/order/{order_id}/status", "/branding/{name}", "/healthz", "/admin/orders.csv", "/admin/audit.csv",
             "/admin/settlement/{statement_id}/pdf"}  # JSON, files and downloads: nothing a person reads as a page


def _pages(order_path: str) -> dict[str, str]:
    return {"/": "/", "/?q=话费": "/?q=话费", "/p/{sku}": "/p/G-QQ-100", "/order": "/order", "/order/{order_id}": order_path,
            "/admin/login": "/admin/login", "/admin/password": "/admin/password", "/admin": "/admin",
            "/admin/rules": "/admin/rules", "/admin/catalog": "/admin/catalog", "/admin/orders": "/admin/orders",
            "/admin/revenue": "/admin/revenue", "/admin/licence": "/admin/licence", "/admin/health": "/admin/health", "/admin/grade": "/admin/grade",
            "/admin/users": "/admin/users", "/admin/coupons": "/admin/coupons", "/admin/settlement": "/admin/settlement",
            "/admin/settlement/{statement_id}": "/admin/settlement/1", "/admin/payouts": "/admin/payouts",
            "/admin/audit": "/admin/audit", "/admin/api-keys": "/admin/api-keys"}


def _decided(url: str, order_id: str) -> None:
    """As the agent leaves an order HQ's risk control declined (its public reason is the agent's English text)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(update(orders).where(orders.c.id == order_id).values(
            status="rejected", decision="reject", public_reason="declined by HQ risk control",
            decided_at=datetime.now(timezone.utc)))
        conn.execute(insert(audit_log).values(actor="agent", action="order_decided", at=datetime.now(timezone.utc),
                                              detail={"order_id": order_id, "status": "rejected", "decision": "reject"}))
        conn.execute(insert(audit_log).values(actor="agent", action="command_suspend", at=datetime.now(timezone.utc),
                                              detail={"seq": 3, "outcome": "applied"}))
        conn.execute(insert(site_grade).values(id=1, period="2026-10", grade="C", score=46.18, detail=_grade(),
                                               fetched_at=datetime.now(timezone.utc)))  # as the agent copies HQ's
    engine.dispose()


def _grade() -> dict:
    """HQ's answer for a C site (hq.grades.own_grade's shape), with what would raise it."""
    from hq.grading import GradingConfig, next_line

    metrics = {"gmv_cents": 1_000_000, "growth": -0.1, "orders": 120, "repurchase_rate": 0.05, "uptime": 0.97,
               "sync_health": 0.99, "rejection_rate": 0.08, "review_rate": None, "refund_rate": 0.04, "complaints": 3}
    config = GradingConfig()
    return {"period": "2026-10", "grade": "C", "score": 46.18, "trend": ["B", "C", "C", "C"], "metrics": metrics,
            "scales": {n: sc.model_dump() for n, sc in config.scales.items()}, "grades": dict(config.grades),
            "next": next_line(metrics, config)}


def _signed_in(client, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": token, "username": username, "password": password}).status_code == 303


def test_every_page_in_zh_cn_shows_no_english(tmp_path):
    from storefront import branding, shop
    from storefront.admin import routes as admin

    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    update_site_state(url, health={"hq_reachable": True, "outbox_pending": 0, "outbox_alert": False, "db": "ok",
                                   "hq_link": "ok", "hq_unreachable_since": None, "catalog_items": 8,
                                   "hq_licence_view": {"status": "active", "reason": None}})
    client, _ = _app(tmp_path / "site", url)
    placed = _submit(client, "G-QQ-100")
    assert placed.status_code == 303, placed.text[:300]
    order_path = placed.headers["location"]
    _decided(url, order_path.split("/order/")[1].split("?")[0])
    routes = {r.path for router in (shop.router, admin.public, admin.router, branding.router) for r in router.routes
              if "GET" in getattr(r, "methods", ())}
    pages = _pages(order_path)
    assert routes - NOT_PAGES == {p for p in pages if "?" not in p}, "a page the zh-CN walk does not open: add it"
    passwords = {role: create_admin(url, f"zh-{role}", role=role, migrate=False) for role in ("admin", "operator")}
    found: dict[str, list[str]] = {}
    for role, password in passwords.items():
        _signed_in(client, f"zh-{role}", password)
        for route, path in pages.items():
            r = client.get(path, params={"lang": "zh-CN"})
            assert r.status_code in (200, 403, 404), (route, role, r.status_code)
            words = english_words(r.text)
            if words:
                found[f"{role} {route}"] = sorted(set(words))
    assert not found, "\n".join(f"{page}: {words}" for page, words in found.items())


def test_the_check_finds_english_and_leaves_codes_alone():
    page = ('<p>订单状态：active</p><td translate="no">G-QQ-100</td><script>var x = "skip";</script>'
            '<input placeholder="Coupon code"><p>2026-12-07 17:30 CST 导出 CSV</p>')
    assert english_words(page) == ["active", "Coupon", "code"]


def test_a_refused_coupon_and_its_field_read_in_the_page_language(tmp_path):
    """The coupons plugin answers in English; the shop shows its label and refusal in zh-CN (and en stays English)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, _ = _app(tmp_path / "site", url)
    page = client.get("/p/G-QQ-100", params={"lang": "zh-CN"}).text
    assert '<label for="f-x_coupon">优惠码</label>' in page
    refused = _submit(client, "G-QQ-100", x_coupon="SPRING")
    assert refused.status_code == 422
    assert "优惠码 SPRING 无效。" in refused.text
    assert not english_words(refused.text, ALLOWED | {"SPRING"})  # the code the buyer typed is theirs
    long = _submit(client, "G-QQ-100", x_coupon="X" * 40)
    assert "优惠码最多 32 个字符" in long.text
    client.get("/", params={"lang": "en"})
    assert "Coupon SPRING is not valid." in _submit(client, "G-QQ-100", x_coupon="SPRING").text


def test_a_label_the_site_owner_wrote_is_shown_as_written():
    from storefront.i18n import translator
    from storefront.plugin_text import plugin_text

    t = translator("zh-CN")
    assert plugin_text(t, "优惠券（选填）") == "优惠券（选填）"
    assert plugin_text(t, "coupon SPRING needs an order of at least 50.00") == "优惠码 SPRING 要求订单金额至少 50.00 元。"
    assert plugin_text(t, "coupon <b> is not valid") == "coupon <b> is not valid"  # not a code: not one of the phrases
