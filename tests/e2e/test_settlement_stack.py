"""Settlement on the real stack: an order paid at HQ shows on the site's revenue page with HQ's figures; a
statement issued at HQ reaches the finance role, whose confirmation travels back through the agent.

One stack of the test's own (tests/support/kit_stack.py): HQ in a container, a site launched by `kitctl up`.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

import httpx
import pytest

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    s = new_stack(tmp_path_factory.mktemp("settle"), "st", engine_with_kit_images())
    try:
        launch_stack(s, "结算站")
        yield s
    finally:
        remove_stack(s)


def _in_hq(stack: Stack, code: str, *args: str) -> dict:  # type: ignore[type-arg]
    exit_code, out = stack.container("hq").exec_run(["python", "-c", code, *args], demux=True)
    assert exit_code == 0, (out[1] or b"").decode()[-600:]
    return json.loads(out[0].decode().strip().splitlines()[-1])


def _finance(stack: Stack) -> httpx.Client:
    created = stack.kitctl("admin", "create", "fin", "--role", "finance").stdout
    password = re.search(r"password (\S+)", created).group(1)  # type: ignore[union-attr]
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
