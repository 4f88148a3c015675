"""The buyer's pay page: an order awaiting payment shows the amount, a QR code drawn here, a countdown and the link;
its status endpoint (what the page's script asks) follows the order and is as private as the page."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from storefront.orders import payment_view
from tests.storefront.http import checkout, login
from tests.storefront.support import record_decision, versioned_url

PAY_URL = "https://pay.example.test/submit.php?pid=1001&out_trade_no=kabc&money=95.00&sign=x&sign_type=MD5"


def _payment(seconds: int = 600) -> dict[str, object]:
    expires = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {"gateway": "epay", "pay_url": PAY_URL, "qr": PAY_URL, "amount_cents": 9500, "currency": "CNY",
            "expires_at": expires, "status": "pending"}


def _placed(site) -> tuple[httpx.Client, str]:  # type: ignore[no-untyped-def]
    buyer = httpx.Client(base_url=site.base, timeout=30)
    r = checkout(buyer, "G-QQ-100", password="pay-pw-1", password2="pay-pw-1")
    assert r.status_code == 303, r.text[:300]
    return buyer, r.headers["location"].split("/")[-1].split("?")[0]


def test_an_order_awaiting_payment_shows_the_pay_page_and_follows_its_status(module_site):
    buyer, order_id = _placed(module_site)
    assert buyer.get(f"/order/{order_id}/status").json() == {"status": "pending"}
    record_decision(module_site.db_url, order_id, module_site.site_key, status="pending_payment", decision="approve",
                    payment=_payment())
    page = buyer.get(f"/order/{order_id}").text
    assert 'id="pay-qr"><svg' in page and 'class="qr"' in page  # drawn locally, inline
    assert 'id="pay-link" href="https://pay.example.test/submit.php?pid=1001&amp;out_trade_no=kabc' in page
    assert "¥95.00" in page and 'id="pay-countdown" data-seconds="' in page and versioned_url("order.js") in page
    assert 'data-status-url="/order/' + order_id + '/status"' in page and 'id="order-return"' in page
    assert "待支付" in page
    assert buyer.get(f"/order/{order_id}/status").json() == {"status": "pending_payment"}
    english = buyer.get(f"/order/{order_id}?lang=en").text
    assert "Awaiting payment" in english and "Scan to pay" in english

    record_decision(module_site.db_url, order_id, module_site.site_key, status="delivered", decision="approve",
                    card_keys=[{"serial": "QQ-9", "secret": "PAID-KEY-9"}])
    assert buyer.get(f"/order/{order_id}/status").json() == {"status": "delivered"}
    done = buyer.get(f"/order/{order_id}").text
    assert "PAID-KEY-9" in done and 'id="pay"' not in done and "order.js" not in done


def test_the_status_endpoint_is_as_private_as_the_order(module_site):
    _, order_id = _placed(module_site)
    stranger = httpx.Client(base_url=module_site.base, timeout=30)
    assert stranger.get(f"/order/{order_id}/status").status_code == 404
    assert stranger.get("/order/NOSUCHORDER1/status").status_code == 404


@pytest.mark.parametrize("status, shown", [("expired", "已过期"), ("refunded", "已退款")])
def test_an_expired_or_refunded_order_says_so_without_a_pay_link(module_site, status, shown):
    buyer, order_id = _placed(module_site)
    record_decision(module_site.db_url, order_id, module_site.site_key, status=status, decision="approve",
                    payment=_payment())
    page = buyer.get(f"/order/{order_id}").text
    assert shown in page and 'id="pay-link"' not in page and "order.js" not in page


def test_an_unusable_payment_shows_no_pay_step():
    assert payment_view({**_payment(), "pay_url": "javascript:alert(1)"}) is None
    assert payment_view({**_payment(), "expires_at": "soon"}) is None
    assert payment_view("not a dict") is None
    late = payment_view(_payment(seconds=-30))
    assert late is not None and late.seconds_left == 0


def test_the_shop_admin_filters_and_names_the_payment_states(module_site):
    from storefront.admin_users import create_admin

    _, waiting = _placed(module_site)
    record_decision(module_site.db_url, waiting, module_site.site_key, status="pending_payment", decision="approve",
                    payment=_payment())
    staff = login(module_site.base, "pay-owner", create_admin(module_site.db_url, "pay-owner", migrate=False))
    page = staff.get("/admin/orders", params={"status": "pending_payment"}).text
    assert waiting in page and ">待支付</span>" in page
    assert 'value="refunded"' in page and 'value="expired"' in page
