"""Settlement on the real stack: an order paid at HQ shows on the site's revenue page with HQ's figures; a
statement issued at HQ reaches the finance role, whose confirmation travels back through the agent; orders paid
and refunded, the week's statement confirmed in the browser, a payout asked for there and approved at HQ, and
both sides' balances the same.

One stack of the test's own (tests/support/kit_stack.py): HQ in a container, a site launched by `kitctl up`.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Iterator

import httpx
import pytest

from storefront.money import format_money
from kitctl.deploy.engine_exec import run_in
from tests.conftest import require
from tests.support.browser import CHROMIUM, chromium
from tests.support.kit_stack import CSRF, Stack, engine_with_kit_images, launch_stack, new_stack, place_order, remove_stack
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# In HQ's container, with its own tools on its own database: an adjustment dated in a month that has ended
# (orders paid now fall in a month that has not), then that month's statement.
ISSUE = """
import json, sys
from datetime import date, datetime, timezone
from hq.ledger import events, statements
from hq.service import HQ
from hq.settings import HQSettings
hq = HQ.open(HQSettings())
site = sys.argv[1]
events.adjust(hq, "e2e", site, 1234, "e2e credit", at=datetime(2026, 10, 14, 9, tzinfo=timezone.utc))
print(json.dumps(statements.issue(hq, "e2e", site, None, date(2026, 10, 14))))
hq.close()
"""
RESPONSE = """
import json, sys
from hq.ledger import statements
from hq.service import HQ
from hq.settings import HQSettings
hq = HQ.open(HQSettings())
print(json.dumps(statements.get(hq, int(sys.argv[1]))))
hq.close()
"""

# A refund of one of the site's orders, a credit so the site has something to withdraw, then the statement of the
# week holding them. That week has not ended, so HQ issues it as it will once it has: the issuing call alone runs
# with HQ's clock moved to the next Monday (the entries are the real ones, posted now). Then its PDF.
SETTLE_WEEK = """
import base64, json, sys
from datetime import datetime, time, timezone
from sqlalchemy import select
from hq.ledger import events, statements
from hq.models import Order
from hq.service import HQ
from hq.settings import HQSettings
hq = HQ.open(HQSettings())
site, refunded = sys.argv[1], sys.argv[2]
with hq.session() as s:
    hq_order_id = s.scalar(select(Order.hq_order_id).where(Order.site_id == site, Order.order_id == refunded))
events.refund(hq, "e2e", hq_order_id, "e2e 退款")
events.adjust(hq, "e2e", site, 50000, "e2e 预付")
today = datetime.now(timezone.utc).date()
end = statements.period("weekly", today)[1]
statements.utcnow = lambda: datetime.combine(end, time(0, 5), tzinfo=timezone.utc)
issued = statements.issue(hq, "e2e", site, "weekly", today)
issued["pdf"] = base64.b64encode(statements.pdf_bytes(hq, issued["id"])).decode()
print(json.dumps(issued))
hq.close()
"""
APPROVE = """
import json, sys
from hq.ledger import payouts
from hq.service import HQ
from hq.settings import HQSettings
hq = HQ.open(HQSettings())
site = sys.argv[1]
waiting = payouts.list_payouts(hq, site, "requested")
done = [payouts.approve(hq, "e2e", p["id"], "E2E-BANK-1") for p in waiting]
print(json.dumps({"approved": done, "balance": payouts.balance(hq, site)}))
hq.close()
"""
BALANCE = """
import json, sys
from hq.ledger import payouts
from hq.service import HQ
from hq.settings import HQSettings
hq = HQ.open(HQSettings())
print(json.dumps(payouts.balance(hq, sys.argv[1])))
hq.close()
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("settle"), "st", engine_with_kit_images())
    try:
        launch_stack(s, "结算站")
        yield s
    finally:
        remove_stack(s)


def _in_hq(stack: Stack, code: str, *args: str) -> dict:  # type: ignore[type-arg]
    done = run_in(stack.container("hq"), ["python", "-c", code, *args])
    assert done.exit_code == 0, done.stderr.decode()[-600:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _staff(stack: Stack, name: str, role: str) -> str:
    """A new admin user of the site; its one-time password."""
    created = stack.kitctl("admin", "create", name, "--role", role).stdout
    return re.search(r"password (\S+)", created).group(1)  # type: ignore[union-attr]


def _finance(stack: Stack) -> httpx.Client:
    password = _staff(stack, "fin", "finance")
    client = httpx.Client(base_url=stack.base, timeout=10)
    token = CSRF.search(client.get("/admin/login").text).group(1)  # type: ignore[union-attr]
    assert client.post("/admin/login", data={"csrf": token, "username": "fin", "password": password}).status_code == 303
    return client


def test_revenue_and_statement_reach_finance_and_the_confirmation_reaches_hq(stack: Stack) -> None:
    order_id, _ = place_order(stack.base)
    finance = _finance(stack)
    # HQ delivered and posted the order; the agent copied the entry: the revenue line is HQ's
    eventually(lambda: order_id in finance.get("/admin/revenue").text, 120, what="the order's ledger line on the site")
    assert 'id="revenue-awaiting"' not in finance.get("/admin/revenue").text  # no delivered order left unbooked

    issued = _in_hq(stack, ISSUE, stack.site_id)
    assert issued["totals"]["adjustments"] == 1234 and issued["cadence"] == "monthly"
    page_url = f"/admin/settlement/{issued['id']}"
    eventually(lambda: finance.get(page_url).status_code == 200 and "已全部同步" in finance.get(page_url).text, 120,
               what="the statement and its lines on the site")
    page = finance.get(page_url).text
    assert "e2e credit" in page and "¥12.34" in page
    confirmed = finance.post(f"{page_url}/confirm", data={"csrf": CSRF.search(page).group(1)})  # type: ignore[union-attr]
    assert confirmed.status_code == 200 and "确认待发送至总部" in confirmed.text
    eventually(lambda: _in_hq(stack, RESPONSE, str(issued["id"]))["response"] == "confirmed", 120,
               what="the confirmation at HQ")
    eventually(lambda: "已确认" in finance.get("/admin/settlement").text, 120, what="HQ's record back on the site")
    finance.close()


def _browser_login(browser, stack: Stack, name: str, role: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(accept_downloads=True, locale="zh-CN")
    page.goto(f"{stack.base}/admin/login")
    page.fill("#f-username", name)
    page.fill("#f-password", _staff(stack, name, role))
    page.click("#login-submit")
    page.wait_for_url(f"{stack.base}/admin")
    return page


def _site_ledger_sum(stack: Stack) -> int:
    return int(stack.psql("select coalesce(sum(net_fen), 0) from settlement_entries")[0])


@pytest.mark.browser
def test_paid_and_refunded_statement_confirmed_in_the_browser_payout_approved_balances_agree(stack: Stack) -> None:
    require(CHROMIUM.exists(), "Debian chromium is not installed")
    kept, _ = place_order(stack.base)
    refunded, _ = place_order(stack.base)
    eventually(lambda: {kept, refunded} <= set(stack.psql("select reference from settlement_entries")), 120,
               what="both orders' ledger entries copied to the site")
    issued = _in_hq(stack, SETTLE_WEEK, stack.site_id, refunded)
    totals = issued["totals"]
    assert totals["orders_gross"] > 0 and totals["refunds_gross"] < 0 and totals["adjustments"] == 50_000
    hq_pdf = base64.b64decode(issued["pdf"])
    url = f"{stack.base}/admin/settlement/{issued['id']}"
    with chromium() as browser:
        for name, role, allowed in (("ops-e2e", "operator", False), ("boss-e2e", "admin", True)):
            page = _browser_login(browser, stack, name, role)
            menu = {a.get_attribute("href") for a in page.query_selector_all("nav.side a")}
            assert (page.goto(f"{stack.base}/admin/settlement").status == 200) is allowed
            assert (page.goto(f"{stack.base}/admin/payouts").status == 200) is allowed
            assert (page.goto(f"{stack.base}/admin/revenue").status == 200) is allowed
            assert ({"/admin/settlement", "/admin/payouts", "/admin/revenue"} <= menu) is allowed, menu
            assert "/admin/orders" in menu  # both see the orders (the role table)
            page.close()

        page = _browser_login(browser, stack, "fin-e2e", "finance")
        eventually(lambda: page.goto(url).status == 200 and page.query_selector("#statement-pdf") is not None, 120,
                   what="the week's statement and all its lines on the site")
        lines = page.inner_text("#statement-lines")
        assert kept in lines and refunded in lines and "e2e 退款" in lines and "e2e 预付" in lines
        assert format_money(totals["closing"]) in page.inner_text("#statement-totals")
        with page.expect_download() as download:
            page.click("#statement-pdf")
        assert open(download.value.path(), "rb").read() == hq_pdf  # the site's PDF of it is HQ's, byte for byte
        page.click("#confirm")
        page.wait_for_selector("#answer-message")
        assert "确认待发送至总部" in page.inner_text("#statement-status")
        eventually(lambda: _in_hq(stack, RESPONSE, str(issued["id"]))["response"] == "confirmed", 120,
                   what="the confirmation at HQ")

        hq_balance = _in_hq(stack, BALANCE, stack.site_id)["balance_fen"]
        eventually(lambda: page.goto(f"{stack.base}/admin/payouts").ok and
                   format_money(hq_balance) in page.inner_text('[data-term="available"]'), 120,
                   what="HQ's balance and payout terms on the site")
        page.fill("#f-amount", "150.00")
        page.click("#request-payout")
        page.wait_for_selector("#payout-message, #e-amount")
        assert page.query_selector("#payout-message") is not None, page.inner_text(".admin-main")
        approved: list = []  # type: ignore[type-arg]

        def approved_at_hq() -> bool:
            approved.extend(_in_hq(stack, APPROVE, stack.site_id)["approved"])
            return bool(approved)

        eventually(approved_at_hq, 120, what="the payout request at HQ, approved")
        assert approved[0]["amount_fen"] == 15_000 and approved[0]["transfer_ref"] == "E2E-BANK-1"
        hq_after = _in_hq(stack, BALANCE, stack.site_id)["balance_fen"]
        assert hq_after == hq_balance - 15_000 - approved[0]["fee_fen"]
        eventually(lambda: page.goto(f"{stack.base}/admin/payouts").ok and "E2E-BANK-1" in page.inner_text("#payouts")
                   and format_money(hq_after) in page.inner_text('[data-term="balance"]'), 120,
                   what="the approval and HQ's new balance on the site's payouts page")
        eventually(lambda: _site_ledger_sum(stack) == hq_after, 120, what="the site's copy of the ledger at HQ's balance")
        page.close()
