"""The pay page in headless Chromium: the order page turns into the pay page and then into the delivery by itself."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.storefront.support import record_decision

pytestmark = pytest.mark.browser
PAY_URL = "https://pay.example.test/submit.php?pid=1001&out_trade_no=kabc&money=104.22&sign=x&sign_type=MD5"


def test_the_order_page_shows_the_pay_step_and_the_card_key_without_a_manual_refresh(module_site, chromium,
                                                                                       artifacts_dir):
    site = module_site
    ctx = chromium.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(site.base + "/p/G-QQ-100")
    page.fill("#f-contact", "buyer@example.cn")
    page.fill("#f-password", "pay-order-pw")
    page.fill("#f-password2", "pay-order-pw")
    page.click("#place-order")
    page.wait_for_url(re.compile(r"/order/"))
    order_id = page.locator("#order-id").inner_text()
    expires = (datetime.now(timezone.utc) + timedelta(minutes=15)).isoformat()
    record_decision(site.db_url, order_id, site.site_key, status="pending_payment", decision="approve",
                    payment={"gateway": "epay", "pay_url": PAY_URL, "qr": PAY_URL, "amount_cents": 10422,
                             "currency": "CNY", "expires_at": expires, "status": "pending"})
    page.locator("#pay-qr svg").wait_for(state="visible", timeout=15_000)  # no reload by the test
    assert page.locator("#order-status").inner_text() == "待支付"
    assert page.locator("#pay-amount").inner_text() == "¥104.22"
    assert page.locator("#pay-link").get_attribute("href") == PAY_URL
    box = page.locator("#pay-qr svg").bounding_box()
    assert box and box["width"] >= 150 and box["height"] >= 150
    first = page.locator("#pay-countdown").inner_text()
    assert re.fullmatch(r"1[45]:[0-5]\d", first), first
    page.wait_for_function("t => document.getElementById('pay-countdown').textContent !== t", arg=first)
    page.screenshot(path=str(artifacts_dir / "storefront-pay-page-phone.png"), full_page=True)

    record_decision(site.db_url, order_id, site.site_key, status="delivered", decision="approve",
                    card_keys=[{"serial": "QQ-PAID-1", "secret": "PAID-SECRET-1"}])
    page.locator("#card-keys").wait_for(state="visible", timeout=15_000)
    assert "PAID-SECRET-1" in page.locator("#card-keys").inner_text()
    assert page.locator("#pay").count() == 0 and not blocked
