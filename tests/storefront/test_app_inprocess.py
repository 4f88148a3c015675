"""Edge cases through the ASGI app in-process (no uvicorn): states and plugin answers that are awkward to reach live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sitedb.engine import make_engine
from sitedb.migrate import upgrade
from sitedb.models import Order, PriceRule
from storefront.admin_users import create_admin
from storefront.settings import StorefrontSettings
from tests.storefront.http import NONCE, form_token
from tests.storefront.support import seed, write_site_files

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


def _app(tmp_path: Path, url: str, **overrides: object):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from storefront.app import create_app

    env = write_site_files(tmp_path / "site")
    settings = StorefrontSettings(database_url=url, site_config=env["KIT_SITE_CONFIG"], secret_key_file=env["KIT_SECRET_KEY_FILE"],
                                  site_key_file=env["KIT_SITE_KEY_FILE"], branding_dir=env["KIT_BRANDING_DIR"],
                                  **{"state_cache_seconds": 0, **overrides})
    app = create_app(settings)
    return TestClient(app, base_url="http://testserver", follow_redirects=False), app.app.state.shop


def _count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Order))
    finally:
        engine.dispose()


def _submit(client, sku: str, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/p/{sku}").text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw", **fields}
    return client.post(f"/p/{sku}/checkout", data=data)


def test_a_site_whose_licence_was_never_verified_takes_no_orders(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM site_state")
    engine.dispose()
    client, _ = _app(tmp_path, url)
    assert "本站正在开通中" in client.get("/").text
    assert _submit(client, "G-QQ-100").status_code == 503
    assert _count(url) == 0


def test_an_unknown_payment_mode_refuses_checkout_instead_of_pretending(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, _ = _app(tmp_path, url, payment_mode="alipay-unapproved")
    r = _submit(client, "G-QQ-100")
    assert r.status_code == 503 and "暂不支持在线支付" in r.text
    assert _count(url) == 0


class CouponHost:
    """A plugin host answering like the coupons plugin would (the boundary the storefront calls)."""

    loaded = ["coupons"]
    refused: dict[str, str] = {}

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def checkout_fields(self):  # type: ignore[no-untyped-def]
        return [{"name": "coupon", "label": "优惠码", "required": False, "max_length": 16}]

    def adjust_checkout(self, session, ctx):  # type: ignore[no-untyped-def]
        assert session.in_transaction()  # called inside the checkout transaction
        code = ctx["fields"].get("coupon")
        if code == "BAD":
            return {"discount_cents": 0, "extras": {}, "errors": {"coupon": "优惠码无效"}}
        if code == "HUGE":
            return {"discount_cents": 10**9, "extras": {"coupon": code}, "errors": {}}
        return {"discount_cents": 500 if code else 0, "extras": {"coupon": code} if code else {}, "errors": {}}

    def emit(self, event, payload):  # type: ignore[no-untyped-def]
        self.events.append((event, payload))

    def page_lines(self, slot, ctx):  # type: ignore[no-untyped-def]
        return []


def test_plugin_fields_discounts_and_errors_apply_inside_checkout(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, shop = _app(tmp_path, url)
    host = CouponHost()
    shop.plugins.get = lambda features: host
    assert "优惠码" in client.get("/p/G-QQ-100").text
    bad = _submit(client, "G-QQ-100", x_coupon="BAD")
    assert bad.status_code == 422 and "优惠码无效" in bad.text and _count(url) == 0
    ok = _submit(client, "G-QQ-100", x_coupon="SAVE5")
    assert ok.status_code == 303
    huge = _submit(client, "G-QQ-100", x_coupon="HUGE")
    assert huge.status_code == 303
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {r.total_cents: r for r in conn.execute(select(Order.total_cents, Order.discount_cents, Order.extras))}
    engine.dispose()
    assert 10422 - 500 in rows and rows[10422 - 500].extras["plugins"] == {"coupon": "SAVE5"}
    assert 9650 in rows  # the discount cannot take the total below HQ's price
    assert rows[10422 - 500].extras["payment"] == {"mode": "hq_approval", "state": "awaiting_hq_decision"}
    assert [e for e, _ in host.events] == ["order_created", "order_created"]
    from plugins.events import OrderCreated

    first = OrderCreated.model_validate(host.events[0][1])  # the documented payload, nothing more or less
    assert (first.category, first.unit_price_cents, first.discount_cents, first.total_cents) == ("game", 10422, 500, 9922)
    assert first.extras == {"coupon": "SAVE5"}  # what the plugin returned reaches its own event (issue 28, case 2)


def test_price_rule_form_errors_write_nothing_and_edit_loads_the_rule(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    password = create_admin(url, "ops", role="operator", migrate=False)
    client, _ = _app(tmp_path, url)
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": token, "username": "ops", "password": password}).status_code == 303
    r = client.post("/admin/rules", data={"csrf": token, "scope": "sku", "target": "NOPE", "kind": "percent", "value": "1.234",
                                          "rounding": "none", "action": "save"})
    assert r.status_code == 422 and "请填写存在的分类或商品编码" in r.text and "加价须为数字" in r.text
    r = client.post("/admin/rules", data={"csrf": token, "scope": "all", "kind": "fixed", "value": "-1", "rounding": "cents", "action": "save"})
    assert r.status_code == 422 and "请选择取整方式" in r.text
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(PriceRule)) == 1  # only the seeded rule
    engine.dispose()
    edit = client.get("/admin/rules?edit=1").text
    assert 'name="id" value="1"' in edit and 'value="8.00"' in edit
    assert client.get("/admin/rules?edit=42").status_code == 404
    r = client.get("/admin/orders?start=2026-13-01")
    assert r.status_code == 422 and "日期格式应为 YYYY-MM-DD" in r.text


def _points_host(features: tuple[str, ...] = ("coupons",)):  # type: ignore[no-untyped-def]
    """A real plugin host with a third-party style plugin: points per yuan on the product page, points earned
    (from what its own checkout hook stored) on the order page, in the buyer's language."""
    from plugins.contract import Manifest, Plugin
    from plugins.host import PluginHost
    from tests.plugins.fixture_plugins import source

    class Points(Plugin):
        manifest = Manifest(name="points", version="1.0", feature="coupons", api_version=2)

        def adjust_checkout(self, session, ctx):  # type: ignore[no-untyped-def]
            return {"extras": {"points": ctx["unit_price_cents"] * ctx["quantity"] // 100}}

        def page_lines(self, slot, ctx):  # type: ignore[no-untyped-def]
            zh = ctx["locale"] == "zh-CN"
            if slot == "product":
                points = ctx["price_cents"] // 100
                return [f"购买可得 {points} 积分" if zh else f"Earn {points} points", "<b>bold?</b>"]
            points = ctx["extras"].get("points", 0)
            return [f"本单获得 {points} 积分" if zh else f"This order earned {points} points"]

    return PluginHost.load(list(features), sources=[source(Points)])


def test_plugin_page_lines_show_the_products_and_the_orders_context_escaped_in_each_locale(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, shop = _app(tmp_path, url)
    host = _points_host()
    shop.plugins.get = lambda features: host
    page = client.get("/p/G-QQ-100").text  # sells at 104.22
    assert '<li data-plugin="points">购买可得 104 积分</li>' in page
    assert "&lt;b&gt;bold?&lt;/b&gt;" in page and "<b>bold?</b>" not in page
    assert '<li data-plugin="points">Earn 104 points</li>' in client.get("/p/G-QQ-100?lang=en").text
    placed = _submit(client, "G-QQ-100")
    assert placed.status_code == 303
    order = client.get(placed.headers["location"].split("?")[0]).text
    assert '<li data-plugin="points">This order earned 104 points</li>' in order  # the lang cookie is English now


def test_a_plugin_the_licence_drops_leaves_the_cached_product_page_at_once(tmp_path):
    """The product page's cache key holds the loaded plugin set. It held the licence's status only, so a
    page cached while the plugin was loaded kept its line for the page cache's TTL after the licence (read
    under its own TTL) had dropped the plugin's feature."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, shop = _app(tmp_path, url, state_cache_seconds=600)
    shop.plugins.get = lambda features: _points_host(tuple(features))
    line = '<li data-plugin="points">Earn 104 points</li>'
    assert line in client.get("/p/G-QQ-100?lang=en").text
    engine = make_engine(url)
    with engine.begin() as conn:  # what the agent writes when HQ's licence loses the feature
        features = conn.exec_driver_sql("SELECT features FROM site_state").scalar_one()
        kept = [f for f in (features if isinstance(features, list) else json.loads(features)) if f != "coupons"]
        conn.exec_driver_sql("UPDATE site_state SET features = ?", (json.dumps(kept),))
    engine.dispose()
    shop.cache.clear()  # the licence's read cache turned over; the page cache has not
    assert shop.plugin_host().loaded == []
    page = client.get("/p/G-QQ-100?lang=en").text
    assert "Earn 104 points" not in page and 'class="price-big"' in page


def test_the_same_form_sent_again_opens_its_order_only_with_the_orders_password(tmp_path):
    """A browser that lost the checkout's answer (and the access cookie it carried) sends the form again."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, _ = _app(tmp_path, url)
    page = client.get("/p/G-QQ-100").text
    form = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw"}
    placed = client.post("/p/G-QQ-100/checkout", data=form)
    order_page = placed.headers["location"].split("?")[0]
    assert placed.status_code == 303 and "placed=1" in placed.headers["location"]

    def lost_answer() -> None:
        client.cookies.delete("kit_orders")
        assert 'id="order-id"' not in client.get(order_page).text  # the lookup form, not the order

    lost_answer()
    other = client.post("/p/G-QQ-100/checkout", data={**form, "password": "guess-pw-1", "password2": "guess-pw-1"})
    assert other.status_code == 303 and other.headers["location"] == order_page  # the same order, no second one
    assert "kit_orders" not in other.cookies and 'id="order-id"' not in client.get(order_page).text
    again = client.post("/p/G-QQ-100/checkout", data=form)
    assert again.status_code == 303 and again.headers["location"] == order_page and "kit_orders" in again.cookies
    assert 'id="order-id"' in client.get(order_page).text
    assert _count(url) == 1


def test_the_served_shop_runs_no_more_request_threads_than_its_pool_holds_connections(tmp_path):
    """Starlette's default is 40 threads; with more threads than connections a burst waits on the pool, which
    gives up after a few seconds with a maintenance page while the database is fine."""
    from anyio import to_thread

    from sitedb.engine import POOL_SIZE

    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, _ = _app(tmp_path, url)
    with client:  # runs the app's lifespan, as uvicorn does
        assert client.get("/healthz").status_code == 200
        assert client.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens) == POOL_SIZE
