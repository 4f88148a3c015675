"""End to end through the real storefront (uvicorn on 127.0.0.1): licence features switch plugins live.

The test stands in for the agent only at the database boundary (site_state
features, as a heartbeat's licence command would write them); everything else
is the real server, the real host and the built-in plugins.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select

from kitcore.licence.tiers import TIERS
from plugins.coupons.tables import coupons
from kitctl.siteplugins import SiteLicence, configure, run_admin
from sitedb.engine import make_engine, session_factory
from sitedb.models import Order, SiteState
from tests.plugins.test_plugins_notify import Receiver
from tests.storefront.http import checkout
from tests.storefront.support import running_storefront, seed, write_site_files

SKU = "G-QQ-100"  # HQ price 96.50, site price 104.22 (8 % markup)
COUPON_FIELD = 'name="x_coupon"'


def set_features(url: str, tier: str) -> None:
    """What the agent writes when HQ's signed licence command changes the tier."""
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as s:
            state = s.get(SiteState, 1)
            state.tier, state.features = tier, list(TIERS[tier].features)
    finally:
        engine.dispose()


def wait_for_page(client: httpx.Client, path: str, present: bool, needle: str = COUPON_FIELD, timeout: float = 8.0) -> str:
    """Reload until `needle` is (or is no longer) on the page: the storefront caches state about a second."""
    deadline = time.monotonic() + timeout
    while True:
        html = client.get(path).text
        if (needle in html) == present or time.monotonic() > deadline:
            assert (needle in html) == present, f"{needle!r} {'never appeared' if present else 'never went away'}"
            return html
        time.sleep(0.25)


def one_order(url: str, order_id: str) -> Order:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            return s.get(Order, order_id)
    finally:
        engine.dispose()


def coupon_uses(url: str, code: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(select(coupons.c.used_count).where(coupons.c.code == code)).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[str, str, Path, Receiver]]:
    """A basic-tier site with a coupon already defined, notify configured, and the storefront running."""
    url = f"sqlite:///{tmp_path / 'site.db'}"
    site_dir = tmp_path / "site"
    env = write_site_files(site_dir)
    seed(url)
    set_features(url, "basic")
    pro = SiteLicence("pro", TIERS["pro"].features)
    run_admin(site_dir, "coupons", "add", ["code=SAVE5", "fixed_cents=500", "max_uses=5"], url, pro)
    run_admin(site_dir, "coupons", "add", ["code=BIG10", "percent=10"], url, pro)
    run_admin(site_dir, "coupons", "add", ["code=PHONES", "percent=10", "categories=phone"], url, pro)
    receiver = Receiver()
    configure(site_dir, "notify", [f"webhook_url={receiver.url}", "webhook_secret=e2e-secret", "events=order_created"], pro)
    env["KIT_PLUGIN_CONFIG_DIR"] = str(site_dir)
    try:
        with running_storefront(url, env, tmp_path / "storefront.log") as base:
            yield base, url, site_dir, receiver
    finally:
        receiver.close()


def test_coupon_field_follows_the_licence_live_and_a_coupon_discounts_the_order(shop):
    base, url, _, receiver = shop
    client = httpx.Client(base_url=base, timeout=30)

    # basic: no coupon field, and a smuggled coupon value changes nothing
    assert COUPON_FIELD not in client.get(f"/p/{SKU}").text
    plain = checkout(client, SKU, x_coupon="SAVE5")
    assert plain.status_code == 303
    plain_order = one_order(url, plain.headers["location"].split("/order/")[1].split("?")[0])
    assert plain_order.discount_cents == 0 and plain_order.total_cents == 10_422

    # upgrade by heartbeat: the running storefront shows the field without a restart
    set_features(url, "pro")
    wait_for_page(client, f"/p/{SKU}", present=True)
    placed = checkout(client, SKU, x_coupon="save5")
    assert placed.status_code == 303, placed.text[:500]
    order_id = re.search(r"/order/([0-9A-Za-z]+)", placed.headers["location"]).group(1)
    order = one_order(url, order_id)
    assert order.discount_cents == 500 and order.total_cents == 10_422 - 500
    assert order.extras["plugins"]["coupons"] == {"code": "SAVE5", "discount_cents": 500}
    assert coupon_uses(url, "SAVE5") == 1

    # 10 % would be 10.42, but the host stops the total at HQ's price (96.50)
    big = checkout(client, SKU, x_coupon="BIG10")
    big_order = one_order(url, re.search(r"/order/([0-9A-Za-z]+)", big.headers["location"]).group(1))
    assert big_order.total_cents == 9_650 and big_order.extras["plugins"]["_clamped_cents"] == 1_042 - 772

    # a coupon that does not apply: the buyer sees why, nothing is written
    refused = checkout(client, SKU, x_coupon="PHONES")
    assert refused.status_code in (200, 400, 409, 422)
    assert "优惠码 PHONES 不适用于这个分类。" in refused.text  # the plugin's English, in the page's language
    assert coupon_uses(url, "PHONES") == 0

    # the order_created event reached the webhook, signed, without card keys
    deadline = time.monotonic() + 10
    while len(receiver.requests) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert order_id in {b["data"].get("order_id") for b in bodies}

    # downgrade: the field goes away again, still without a restart
    set_features(url, "basic")
    wait_for_page(client, f"/p/{SKU}", present=False)
    after = checkout(client, SKU, x_coupon="SAVE5")
    after_order = one_order(url, after.headers["location"].split("/order/")[1].split("?")[0])
    assert after_order.discount_cents == 0 and coupon_uses(url, "SAVE5") == 1


def in_own_thread(fn) -> None:  # type: ignore[no-untyped-def]
    """Run Playwright's sync API in a thread of its own, so it never meets another suite's browser loop."""
    import threading

    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "browser test did not finish in 120 s"
    if failure:
        raise failure[0]


@pytest.mark.browser
def test_a_buyer_types_a_coupon_in_chromium(shop, artifacts_dir):

    from tests.conftest import require
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    require(CHROMIUM.exists(), "Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    base, url, _, _ = shop
    set_features(url, "pro")
    placed: list[str] = []

    def drive() -> None:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(locale="zh-CN").new_page()
                page.set_default_timeout(10_000)
                deadline = time.monotonic() + 8
                while True:
                    page.goto(f"{base}/p/{SKU}")
                    if page.locator("#f-x_coupon").count() or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)
                page.fill("#f-quantity", "1")
                page.fill("#f-contact", "buyer@example.cn")
                page.fill("#f-password", "my-order-pw")
                page.fill("#f-password2", "my-order-pw")
                page.fill("#f-x_coupon", "SAVE5")
                page.screenshot(path=str(artifacts_dir / "plugins-coupon-checkout.png"), full_page=True)
                page.click("#place-order")
                page.wait_for_url(re.compile(r"/order/[0-9A-Z]+"))
                placed.append(page.locator("#order-id").inner_text())
            finally:
                browser.close()

    in_own_thread(drive)
    assert one_order(url, placed[0]).total_cents == 10_422 - 500
