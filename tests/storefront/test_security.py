"""Security behaviour of the running server: headers, cookies, CSRF, escaping, rate limits, bad input."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from sitedb.engine import make_engine, session_factory
from sitedb.models import CatalogItem, Order
from storefront.admin_users import create_admin
from tests.storefront.http import NONCE, checkout, form_token


def _orders(site) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(site.db_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Order))
    finally:
        engine.dispose()


@pytest.fixture
def client(module_site):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=module_site.base, timeout=30) as c:
        yield c


@pytest.mark.parametrize("path", ["/", "/p/G-QQ-100", "/order", "/admin/login", "/no-such-page"])
def test_every_page_has_strict_security_headers(client, path):
    r = client.get(path)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "<script" not in r.text and " style=" not in r.text  # nothing inline for the CSP to forbid


def test_cookies_are_httponly_lax_and_secure_behind_https(module_site, client):
    plain = client.get("/p/G-QQ-100").headers["set-cookie"].lower()
    assert "httponly" in plain and "samesite=lax" in plain and "secure" not in plain
    behind_proxy = httpx.get(module_site.base + "/p/G-QQ-100", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in behind_proxy.headers["set-cookie"].lower()
    assert behind_proxy.headers["strict-transport-security"].startswith("max-age=")


def test_checkout_without_valid_csrf_token_is_refused_and_writes_nothing(module_site, client):
    before = _orders(module_site)
    page = client.get("/p/G-QQ-100").text
    data = {"nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000", "password": "secret-pw", "password2": "secret-pw"}
    assert client.post("/p/G-QQ-100/checkout", data=data).status_code == 403
    assert client.post("/p/G-QQ-100/checkout", data={**data, "csrf": "forged"}).status_code == 403
    other = httpx.Client(base_url=module_site.base)
    stolen = form_token(other.get("/order").text)  # a token for another browser's cookie
    assert client.post("/p/G-QQ-100/checkout", data={**data, "csrf": stolen}).status_code == 403
    cross = client.post("/p/G-QQ-100/checkout", data={**data, "csrf": form_token(page)}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert _orders(module_site) == before


def test_bad_checkout_fields_get_messages_and_write_nothing(module_site, client):
    before = _orders(module_site)
    r = checkout(client, "P-CM-50", quantity="abc", account="", contact="", password="12345", password2="12345")
    assert r.status_code == 422
    for message in ("请输入整数数量", "请填写充值账号", "请填写联系方式", "订单密码长度须为 6–128 位"):
        assert message in r.text
    r = checkout(client, "G-QQ-100", password="abcdef", password2="abcdeg")
    assert r.status_code == 422 and "两次输入的订单密码不一致" in r.text
    r = checkout(client, "G-QQ-100", nonce="tampered.nonce")
    assert r.status_code == 400 and "表单已过期" in r.text
    assert "abcdef" not in r.text  # passwords are never echoed back
    assert _orders(module_site) == before


def test_out_of_stock_and_unknown_products(client):
    r = checkout(client, "M-BILI-Y")  # stock 0
    assert r.status_code == 422 and "该商品已售罄，暂不能下单，也不会扣款。" in r.text
    assert client.get("/p/NOPE").status_code == 404
    assert client.get("/p/" + "x" * 500).status_code == 404


def test_double_submit_finds_the_same_order(module_site, client):
    before = _orders(module_site)
    page = client.get("/p/G-QQ-100").text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw"}
    first = client.post("/p/G-QQ-100/checkout", data=data)
    second = client.post("/p/G-QQ-100/checkout", data={**data, "quantity": "3"})
    assert first.headers["location"].split("?")[0] == second.headers["location"]
    assert _orders(module_site) == before + 1


def test_untrusted_text_is_escaped(module_site, client):
    engine = make_engine(module_site.db_url)
    with session_factory(engine).begin() as s:
        s.get(CatalogItem, "G-WOW-30").name = '<script>alert("x")</script>魔兽'
    engine.dispose()
    client.get("/?q=x")  # let the one-second cache pass
    import time
    time.sleep(1.2)
    home = client.get("/").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;魔兽" in home and "<script>" not in home
    search = client.get("/", params={"q": '"><img src=x onerror=alert(1)>'}).text
    assert "<img src=x" not in search and "&#34;&gt;&lt;img src=x" in search


def test_order_lookup_is_rate_limited_per_order_and_per_client(module_site):
    buyer = httpx.Client(base_url=module_site.base, timeout=30)
    order_id = checkout(buyer, "G-QQ-100", password="right-password", password2="right-password").headers["location"].split("/")[-1].split("?")[0]
    attacker = httpx.Client(base_url=module_site.base, timeout=30)
    token = form_token(attacker.get("/order").text)
    for i in range(5):
        r = attacker.post("/order", data={"csrf": token, "order_id": order_id, "password": f"guess-{i}"})
        assert r.status_code == 403 and "订单号或订单密码不正确" in r.text
    r = attacker.post("/order", data={"csrf": token, "order_id": order_id, "password": "right-password"})
    assert r.status_code == 429  # even the right password waits once the order is under attack
    codes = [attacker.post("/order", data={"csrf": token, "order_id": f"X{i:07d}", "password": "x"}).status_code for i in range(20)]
    assert codes[-1] == 429 and 403 in codes


def test_admin_login_is_rate_limited_per_account(module_site):
    password = create_admin(module_site.db_url, "target", migrate=False)
    c = httpx.Client(base_url=module_site.base, timeout=30)
    token = form_token(c.get("/admin/login").text)
    for _ in range(5):
        assert c.post("/admin/login", data={"csrf": token, "username": "target", "password": "nope"}).status_code == 401
    r = c.post("/admin/login", data={"csrf": token, "username": "target", "password": password})
    assert r.status_code == 429 and "登录尝试过多" in r.text


def test_healthz_reports_the_database(client):
    r = client.get("/healthz")
    body = r.json()
    assert r.status_code == 200 and body == {"status": "ok", "database": "ok", "started_at": body["started_at"]}
    assert isinstance(body["started_at"], int)  # the agent tells a restart by a new value
