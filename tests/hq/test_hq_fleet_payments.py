"""The fleet page's payments over HTTP (issue 16): the gateway's payments by state, a refund from the page (a
refusal is one line and changes nothing), the reconciliation's result and its differences, and on the site's
page its payments, refunds and the differences naming it."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any, Iterator

from pathlib import Path

import httpx
import pytest

from hq.clock import utcnow
from hq.payments import config, reconcile
from hq.payments.sandbox_epay import EpaySandbox, serving
from hq.testing import RunningHQ, running_hq
from tests.hq.helpers import order, post_orders

SITE = "xingchen"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def paying(tmp_path, db_url) -> Iterator[tuple[RunningHQ, str, EpaySandbox]]:
    with serving(EpaySandbox(notify_delay=0.1)) as box, \
            running_hq(tmp_path, database_url=db_url, payment_check_seconds=3600) as hq:
        hq.seed_item("card-f", price_cents=9000)
        hq.seed_card_keys("card-f", 3)
        pid, key = box.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": box.url, "pid": pid, "key": key})
        yield hq, hq.issue_licence(SITE, categories=["game"]), box


def _paid(hq: RunningHQ, token: str, box: EpaySandbox, order_id: str) -> dict[str, Any]:
    """An order paid at the sandbox and delivered by HQ's notification."""
    result = post_orders(hq, token, f"k-{order_id}", [order(order_id, sku="card-f", unit_price_cents=9500)]).json()
    pay_url = result["results"][0]["payment"]["pay_url"]
    trade_no = re.search(r"/pay/(S[0-9a-f]+)", httpx.get(pay_url).text).group(1)  # type: ignore[union-attr]
    box.pay(trade_no)
    deadline = time.monotonic() + 15
    while not box.trades[trade_no].notified and time.monotonic() < deadline:
        time.sleep(0.05)
    assert box.trades[trade_no].notified == 1
    return {**result["results"][0], "trade_no": trade_no}


def _login(hq: RunningHQ) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=hq.url, timeout=30, follow_redirects=False)
    assert client.post("/fleet/login", data={"token": hq.operator_token}).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/fleet").text).group(1)  # type: ignore[union-attr]
    return client, csrf


def _refund(client: httpx.Client, **form: str) -> str:
    done = client.post("/fleet/payments/refund", data=form)
    assert done.status_code == 303 and done.headers["location"].startswith("/fleet?"), done.text
    assert done.headers["location"].endswith("#payments")
    return client.get(done.headers["location"]).text


def _table(page: str, table_id: str) -> str:
    return re.search(rf'<table id="{table_id}">.*?</table>', page, re.S).group(0)  # type: ignore[union-attr]


def test_an_operator_refunds_from_the_fleet_page_and_sees_it_there_and_on_the_sites_page(paying):
    hq, token, box = paying
    paid = _paid(hq, token, box, "F1")
    client, csrf = _login(hq)
    page = client.get("/fleet").text
    assert 'data-state="paid">1<' in _table(page, "gateways") and "No refund yet." in _table(page, "refunds")

    refused = _refund(client, csrf=csrf, hq_order_id=paid["hq_order_id"], reason=" ")
    assert "reason must be one line" in refused and box.trades[paid["trade_no"]].refunded == "0.00"
    unknown = _refund(client, csrf=csrf, hq_order_id="hq_nope", reason="buyer asked")
    assert "does not exist" in unknown
    forged = client.post("/fleet/payments/refund", data={"csrf": "x", "hq_order_id": paid["hq_order_id"],
                                                         "reason": "buyer asked"})
    assert forged.status_code == 403 and box.trades[paid["trade_no"]].refunded == "0.00"

    page = _refund(client, csrf=csrf, hq_order_id=paid["hq_order_id"], reason="买家申请退款")
    assert f"order {paid['hq_order_id']} refunded: 95.00 CNY" in page
    row = re.search(rf'<tr data-refund="{paid["hq_order_id"]}">.*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]
    assert SITE in row and "¥95.00" in row and "买家申请退款" in row and "tester" in row
    assert box.trades[paid["trade_no"]].refunded == "95.00"  # the money went back through the gateway
    again = _refund(client, csrf=csrf, hq_order_id=paid["hq_order_id"], reason="twice")
    assert "its payment is refunded" in again and box.trades[paid["trade_no"]].refunded == "95.00"

    site = client.get(f"/fleet/sites/{SITE}").text
    assert re.search(r'<tr data-state="refunded"><td>refunded</td><td>1</td><td>¥95.00</td>', site)
    assert paid["hq_order_id"] in _table(site, "site-refunds") and "买家申请退款" in _table(site, "site-refunds")
    other = client.get(f"/fleet/sites/{SITE}?lang=zh-CN").text
    assert "支付" in other and "退款" in other


def test_the_reconciliation_and_its_differences_show_on_the_fleet_page_and_the_sites_page(paying):
    hq, token, box = paying
    client, _ = _login(hq)
    assert "No day reconciled yet." in _table(client.get("/fleet").text, "reconciliations")
    _paid(hq, token, box, "F2")
    lost = _paid(hq, token, box, "F3")
    del box.trades[lost["trade_no"]]  # the gateway's books lack a payment HQ holds paid
    today = utcnow().date()
    reconcile.run(hq.service, today, "tester", now=utcnow() + timedelta(days=1, hours=2))
    table = _table(client.get("/fleet").text, "reconciliations")
    row = re.search(rf'<tr data-reconciliation="epay-{today.isoformat()}" data-status="differences">.*?</tr>',
                    table, re.S).group(0)  # type: ignore[union-attr]
    assert "1 · ¥95.00" in row and "2 · ¥190.00" in row  # the gateway's books, HQ's
    assert f'data-kind="paid_at_hq_only">paid_at_hq_only: {SITE} F3<' in row
    site = client.get(f"/fleet/sites/{SITE}").text
    assert re.search(r'<tr data-kind="paid_at_hq_only"><td>[0-9-]+</td><td>epay</td><td>paid_at_hq_only</td><td>F3</td>',
                     _table(site, "site-differences"))


def _tested(client: httpx.Client, gateway: str, csrf: str) -> str:
    done = client.post(f"/fleet/payments/{gateway}/test", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"].endswith("#payments"), done.text
    return client.get(done.headers["location"]).text


def _tests_audited(hq: RunningHQ) -> list[tuple[str, dict[str, Any]]]:
    from sqlalchemy import select

    from hq.models import AuditEvent

    with hq.service.read() as conn:
        return [(op, d) for op, d in conn.execute(select(AuditEvent.operator, AuditEvent.detail)
                                                  .where(AuditEvent.action == "payments.test").order_by(AuditEvent.id))]


def test_the_operator_tests_a_gateways_connection_from_the_fleet_page_and_it_is_audited(paying):
    hq, _, box = paying
    client, csrf = _login(hq)
    assert 'action="/fleet/payments/epay/test"' in _table(client.get("/fleet").text, "gateways")
    pid, key = next(iter(box.merchants.items()))
    page = _tested(client, "epay", csrf)
    assert f"epay: ok — epay at {box.url.split('/')[2]} answered; merchant {pid}&#39;s key accepted" in page
    assert box.trades == {}  # nothing opened at the gateway
    config.configure(hq.service, "tester", "epay", {"api_url": box.url, "pid": pid, "key": "not-the-key"})
    failed = _tested(client, "epay", csrf)
    assert "epay: failed: epay order: KEY" in failed and "not-the-key" not in failed and key not in failed
    assert "is not configured" in _tested(client, "alipay", csrf)  # one line, nothing audited
    forged = client.post("/fleet/payments/epay/test", data={"csrf": "x"})
    assert forged.status_code == 403
    audited = _tests_audited(hq)
    assert [(d["gateway"], d["ok"]) for _, d in audited] == [("epay", True), ("epay", False)]
    assert {op for op, _ in audited} == {"tester"} and "KEY" in audited[1][1]["result"]
    assert not any(secret in str(audited) for secret in (key, "not-the-key"))


@pytest.mark.browser
def test_the_operator_refunds_in_the_browser_and_the_page_shows_it(paying):
    from tests.conftest import require
    from tests.support.browser import CHROMIUM, chromium

    require(CHROMIUM.exists(), "Debian chromium is not installed")
    hq, token, box = paying
    paid = _paid(hq, token, box, "FB1")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{hq.url}/fleet/login")
        page.fill("#token", hq.operator_token)
        page.click("button[type=submit]")
        page.wait_for_selector("#payments")
        page.click('#gateways tr[data-gateway="epay"] form.gateway-test button')
        page.wait_for_selector("#payments")
        assert page.inner_text(".flash").startswith("epay: ok — epay at ")
        page.fill("#refund-order", paid["hq_order_id"])
        page.fill("#refund-reason", "缺货退款")
        page.click("#refund-form button[type=submit]")
        page.wait_for_selector(f'#refunds tr[data-refund="{paid["hq_order_id"]}"]')
        assert f"order {paid['hq_order_id']} refunded" in page.inner_text(".flash")
        assert "缺货退款" in page.inner_text("#refunds")
        assert page.inner_text('#gateways td[data-state="refunded"]') == "1"
        page.goto(f"{hq.url}/fleet/sites/{SITE}?lang=zh-CN")
        assert "缺货退款" in page.inner_text("#site-refunds") and page.inner_text("#payments") == "支付"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hq-fleet-site-payments.png"), full_page=True)
    assert box.trades[paid["trade_no"]].refunded == "95.00"
