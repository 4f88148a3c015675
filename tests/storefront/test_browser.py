"""Buyers and staff driving the real storefront in headless Chromium."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from storefront.admin_users import create_admin
from tests.storefront.http import checkout
from tests.support.browser import follow
from storefront.money import format_money as money
from tests.storefront.support import add_statement, book_entries, record_decision, set_licence

pytestmark = pytest.mark.browser


def _wait_for(page, url: str, text: str, present: bool = True, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Reload until `text` shows (or, with present=False, is gone): state is cached for about a second."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if (text in page.content()) == present or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (text in page.content()) == present, f"{text!r} {'never appeared' if present else 'stayed'} on {url}"


def test_buyer_browses_checks_out_and_sees_card_key_only_with_password(site, chromium, artifacts_dir, request):
    db = request.node.callspec.params["site"]
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    page.goto(site.base + "/")
    assert page.locator(".brand-name").inner_text() == "星辰游戏"
    assert page.locator("img.logo").evaluate("img => img.naturalWidth") > 0  # logo served from /branding/
    assert page.locator(".card").count() == 8
    assert "¥104.22" in page.content()  # HQ ¥96.50 + 8 % markup, formatted for CNY
    page.screenshot(path=str(artifacts_dir / f"storefront-home-{db}.png"), full_page=True)

    page.fill("input[name=q]", "Q币")
    follow(page, ".search button")
    assert page.locator(".card").count() == 1
    page.click(".card a")
    assert page.locator("h1").inner_text() == "腾讯Q币 100元"

    # Bad input: every field gets its own message and nothing is written.
    page.fill("#f-quantity", "9")
    page.fill("#f-contact", "not a contact")
    page.fill("#f-password", "abc")
    page.click("#place-order")
    assert page.locator("#e-quantity").inner_text() == "数量必须在 1 到 5 之间。"
    assert "联系方式应为手机号" in page.locator("#e-contact").inner_text()
    assert "6–128" in page.locator("#e-password").inner_text()
    page.screenshot(path=str(artifacts_dir / f"storefront-checkout-errors-{db}.png"), full_page=True)

    page.fill("#f-quantity", "2")
    page.fill("#f-contact", "buyer@example.cn")
    page.fill("#f-password", "my-order-pw")
    page.fill("#f-password2", "my-order-pw")
    page.click("#place-order")
    page.wait_for_url(re.compile(r"/order/[0-9A-Z]+"))
    order_id = page.locator("#order-id").inner_text()
    assert page.locator("#order-status").inner_text() == "等待总部审核"
    assert "¥208.44" in page.content()

    # The agent (here: the test at the database boundary) records HQ's approval and the card keys.
    record_decision(site.db_url, order_id, site.site_key, status="delivered", decision="approve",
                    card_keys=[{"serial": "QQ2026-0001", "secret": "ABCD-EFGH-1234"}, {"serial": "QQ2026-0002", "secret": "WXYZ-9876-5432"}])
    page.reload()
    assert page.locator("#order-status").inner_text() == "已发货"
    assert page.locator("#card-keys .secret").all_inner_texts() == ["ABCD-EFGH-1234", "WXYZ-9876-5432"]
    page.screenshot(path=str(artifacts_dir / f"storefront-order-{db}.png"), full_page=True)

    # Someone else with only the order number sees no key; a wrong password neither.
    stranger = chromium.new_context(locale="zh-CN").new_page()
    stranger.goto(f"{site.base}/order/{order_id}")
    assert "ABCD-EFGH-1234" not in stranger.content()
    stranger.fill("#f-password", "buyer@example.cn")  # the contact is not the password
    follow(stranger, "#lookup-submit")
    assert "订单号或订单密码不正确" in stranger.content()
    assert "ABCD-EFGH-1234" not in stranger.content()
    stranger.fill("#f-password", "my-order-pw")
    stranger.click("#lookup-submit")
    stranger.wait_for_url(f"**/order/{order_id}")
    assert "ABCD-EFGH-1234" in stranger.content()
    ctx.close()


def test_rejected_order_shows_public_reason_and_english_ui(module_site, chromium, artifacts_dir):
    site = module_site
    page = chromium.new_context(viewport={"width": 390, "height": 844}).new_page()  # a phone screen
    page.goto(site.base + "/?lang=en")
    assert page.locator(".section-title").inner_text() == "Popular products"
    page.screenshot(path=str(artifacts_dir / "storefront-home-phone-en.png"), full_page=True)
    page.goto(site.base + "/p/P-CM-50")
    assert page.locator("label[for=f-account]").inner_text() == "Account to top up"
    page.fill("#f-account", "12345")
    page.fill("#f-contact", "13900139000")
    page.fill("#f-password", "pw-123456")
    page.fill("#f-password2", "pw-123456")
    page.click("#place-order")
    assert "does not look right" in page.locator("#e-account").inner_text()
    page.fill("#f-account", "13912345678")
    page.fill("#f-password", "pw-123456")
    page.fill("#f-password2", "pw-123456")
    page.click("#place-order")
    page.wait_for_url(re.compile(r"/order/"))
    order_id = page.locator("#order-id").inner_text()
    assert page.locator("#order-status").inner_text() == "Awaiting HQ approval"
    record_decision(site.db_url, order_id, site.site_key, status="review", decision="review")
    page.reload()
    assert page.locator("#order-status").inner_text() == "Under manual review"
    record_decision(site.db_url, order_id, site.site_key, status="rejected", decision="reject",
                    public_reason="<b>Account region not supported</b>")
    page.reload()
    assert page.locator("#order-status").inner_text() == "Rejected"
    assert page.locator("#order-reason").inner_text().endswith("<b>Account region not supported</b>")  # escaped, shown as text


def test_suspended_site_shows_notice_refuses_checkout_and_still_finds_orders(module_site, chromium, artifacts_dir):
    site = module_site
    page = chromium.new_context(locale="zh-CN").new_page()
    page.goto(site.base + "/p/G-NET-50")
    page.fill("#f-contact", "13800138000")
    page.fill("#f-password", "keep-this-pw")
    page.fill("#f-password2", "keep-this-pw")
    page.click("#place-order")
    page.wait_for_url(re.compile(r"/order/"))
    order_id = page.locator("#order-id").inner_text()

    page.goto(site.base + "/p/G-QQ-100")  # a form opened before the suspension
    set_licence(site.db_url, "suspended", "逾期未续费")
    _wait_for(page, site.base + "/", "本站授权已暂停")
    assert "原因：逾期未续费" in page.content()
    page.screenshot(path=str(artifacts_dir / "storefront-suspended.png"), full_page=True)

    page.goto(site.base + "/p/G-QQ-100")
    assert page.locator("#place-order").is_disabled()
    page.locator("#place-order").evaluate("b => b.disabled = false")  # a buyer forcing the form anyway
    page.fill("#f-contact", "13800138000")
    page.fill("#f-password", "another-pw")
    page.fill("#f-password2", "another-pw")
    response_status = []
    page.on("response", lambda r: response_status.append(r.status) if "/checkout" in r.url else None)
    page.click("#place-order")
    page.wait_for_load_state()
    assert response_status == [503]
    assert "本站当前暂停接受新订单" in page.content()

    other = chromium.new_context(locale="zh-CN").new_page()
    other.goto(site.base + "/order")
    other.fill("#f-order_id", order_id)
    other.fill("#f-password", "keep-this-pw")
    other.click("#lookup-submit")
    other.wait_for_url(f"**/order/{order_id}")
    assert other.locator("#order-status").inner_text() == "等待总部审核"
    assert "本站授权已暂停" in other.content()

    set_licence(site.db_url, "active")  # resumed: the notice goes and checkout opens again
    _wait_for(other, site.base + "/", "本站授权已暂停", present=False)


def test_admin_previews_and_saves_a_price_rule(sqlite_site, chromium, artifacts_dir):
    site = sqlite_site
    password = create_admin(site.db_url, "owner")
    with httpx.Client(base_url=site.base, timeout=30) as buyer:  # some trade for the overview and reports
        for i, sku in enumerate(["G-QQ-100", "G-NET-50", "M-IQY-VIP", "G-WOW-30"]):
            order_id = checkout(buyer, sku, contact=f"13{i}00138000").headers["location"].split("/")[-1].split("?")[0]
            if i < 3:
                record_decision(site.db_url, order_id, site.site_key, status="delivered", decision="approve",
                                card_keys=[{"serial": f"S{i}", "secret": f"K{i}"}])
    page = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
    page.goto(site.base + "/admin")
    assert page.url.endswith("/admin/login")
    page.fill("#f-username", "owner")
    page.fill("#f-password", "wrong-password")
    follow(page, "#login-submit")
    assert "用户名或密码不正确" in page.content()
    page.fill("#f-username", "owner")
    page.fill("#f-password", password)
    page.click("#login-submit")
    page.wait_for_url("**/admin")
    assert "管理员" in page.locator(".who").inner_text()
    assert [x.strip() for x in page.locator(".stat strong").all_inner_texts()[:4]] == ["1", "4", "¥177.66", "8"]
    page.screenshot(path=str(artifacts_dir / "storefront-admin.png"), full_page=True)
    lines = _book_delivered(site.db_url)  # HQ's entries for the delivered orders, as the agent copies them
    page.click("text=营收报表")
    gross, cost, share = (sum(x[k] for x in lines) for k in ("gross_fen", "hq_cost_fen", "hq_share_fen"))
    assert (gross, cost) == (17_766, -16_450)
    assert page.locator("#revenue tfoot").inner_text().split() == [
        "合计", "3", "0", "¥177.66", "-¥164.50", money(share), money(gross + cost + share)]
    assert page.locator("#revenue-lines tbody tr").count() == 3 and "按总部价出售时" in page.content()
    follow(page, "text=订单")
    assert page.locator(".table tbody tr").count() == 4
    page.screenshot(path=str(artifacts_dir / "storefront-admin-orders.png"), full_page=True)

    page.click("text=价格规则")
    page.select_option("#f-scope", "category")
    page.fill("#f-target", "membership")
    page.select_option("#f-kind", "percent")
    page.fill("#f-value", "20")
    page.select_option("#f-rounding", "yuan_minus_1")
    page.click("button[value=preview]")
    rows = page.locator("#preview tbody tr")
    assert rows.count() == 2
    assert "¥23.99" in rows.nth(0).inner_text() or "¥23.99" in rows.nth(1).inner_text()  # 19.80 * 1.2 = 23.76 -> 23.99
    page.screenshot(path=str(artifacts_dir / "storefront-admin-rules.png"), full_page=True)
    shopper = page.context.new_page()
    shopper.goto(site.base + "/p/M-IQY-VIP")
    assert "¥21.38" in shopper.content()  # the preview changed nothing
    follow(page, "#save-rule")
    assert "2 个商品已重新定价" in page.content()
    page.goto(site.base + "/p/M-IQY-VIP")
    assert "¥23.99" in page.content()

    page.goto(site.base + "/admin/licence")
    assert page.locator("#days-left").inner_text() in ("199", "200")
    page.screenshot(path=str(artifacts_dir / "storefront-admin-licence.png"), full_page=True)


def _book_delivered(url: str) -> list[dict]:  # type: ignore[type-arg]
    """Ledger entries for every delivered order as HQ posts them (12 % share), copied into the site database."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    from sitedb.engine import make_engine
    from sitedb.models import Order

    engine = make_engine(url)
    with engine.connect() as conn:
        delivered = conn.execute(select(Order.__table__).where(Order.status == "delivered").order_by(Order.id)).all()
    engine.dispose()
    now = datetime.now(timezone.utc)
    lines = [{"id": i + 1, "posted_at": now, "kind": "order", "source": o.hq_order_id, "reference": o.id,
              "gross_fen": o.unit_price_cents * o.quantity, "hq_cost_fen": -o.hq_price_cents * o.quantity,
              "hq_share_fen": -((o.unit_price_cents * o.quantity * 1200 + 5000) // 10000)} for i, o in enumerate(delivered)]
    book_entries(url, lines)
    return lines


def test_finance_confirms_a_statement_and_the_operator_never_sees_it(sqlite_site, chromium, artifacts_dir):
    from datetime import datetime, timezone

    site = sqlite_site
    book_entries(site.db_url, [
        {"id": 1, "posted_at": datetime(2026, 10, 14, 9, tzinfo=timezone.utc), "kind": "order", "source": "hq_1",
         "reference": "O-1", "gross_fen": 4_700, "hq_cost_fen": -4_700, "hq_share_fen": -564},
        {"id": 2, "posted_at": datetime(2026, 10, 20, tzinfo=timezone.utc), "kind": "adjustment", "source": "a1",
         "reference": "补偿 O-0", "adjustment_fen": 1_000}])
    add_statement(site.db_url, 41, "2026-10-01", "2026-11-01", {"orders_gross": 4_700, "hq_cost": -4_700,
                                                                "hq_share": -564, "adjustments": 1_000, "closing": 436})
    passwords = {role: create_admin(site.db_url, f"b-{role}", role=role) for role in ("finance", "operator")}

    def signed_in(role: str):  # type: ignore[no-untyped-def]
        page = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
        page.goto(site.base + "/admin/login")
        page.fill("#f-username", f"b-{role}")
        page.fill("#f-password", passwords[role])
        page.click("#login-submit")
        page.wait_for_url("**/admin")
        return page

    operator = signed_in("operator")
    assert operator.locator("nav.side >> text=对账单").count() == 0
    assert operator.goto(site.base + "/admin/settlement/41").status == 403

    page = signed_in("finance")
    page.click("nav.side >> text=对账单")
    follow(page, "#statements >> text=2026-10-01")
    assert page.locator("#statement-lines tbody tr").count() == 2
    assert "已全部同步" in page.locator("#statement-reconciled").inner_text()
    assert page.locator('[data-total="closing"] td').inner_text() == "¥4.36"
    page.click("#dispute")  # no reason given: refused, nothing recorded
    assert "请写明原因" in page.locator("#e-comment").inner_text()
    page.click("#confirm")
    assert "确认待发送至总部" in page.locator("#statement-status").inner_text()
    assert page.locator("#confirm").count() == 0
    page.screenshot(path=str(artifacts_dir / "storefront-admin-statement.png"), full_page=True)
