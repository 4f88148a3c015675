"""A buyer pays for real, across the processes: storefront and agent (real processes, one site database),
HQ served with epay enabled, the epay sandbox as the gateway. No containers.

checkout → the order page turns into the pay page (the pay link came back with HQ's decision) →
the buyer pays at the sandbox → HQ verifies the notification → the agent fetches the delivery →
the order page shows the card key. Prints how long the pay link and the key took.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from hq.payments import config
from hq.payments.sandbox_epay import EpaySandbox, serving
from hq.testing import running_hq
from tests.agent.helpers import OPEN_RULES, AgentProcess, make_site_dir, sqlite_url, wait_until
from tests.storefront.http import checkout
from tests.storefront.support import running_storefront, write_site_files

pytestmark = pytest.mark.slow


def _page(buyer: httpx.Client, path: str) -> str:
    return buyer.get(path).text


def test_checkout_pay_at_the_gateway_and_the_key_shows_on_the_order_page(tmp_path: Path) -> None:
    with serving(EpaySandbox(notify_delay=0.1)) as box, \
            running_hq(tmp_path, site_rate_per_second=1000, site_rate_burst=1000) as hq:
        hq.set_rules(OPEN_RULES)
        hq.seed_item("G-PAY-1", category="game", name="点卡 10 元", price_cents=900)
        [key] = hq.seed_card_keys("G-PAY-1", 1)
        pid, merchant_key = box.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": box.url, "pid": pid, "key": merchant_key})
        db = sqlite_url(tmp_path)
        site = make_site_dir(tmp_path, hq, db, site_id="xingchen", categories=["game"])
        agent = AgentProcess(site, tmp_path / "agent.log", stack_probes="", payment_poll="0.3").start()
        try:
            env = {**write_site_files(tmp_path / "shop"), "KIT_SITE_KEY_FILE": str(site.site_key_file),
                   "KIT_STATE_CACHE_SECONDS": "0"}
            with running_storefront(db, env, tmp_path / "storefront.log") as base:
                buyer = httpx.Client(base_url=base, timeout=30)
                wait_until(lambda: buyer.get("/p/G-PAY-1").status_code == 200, 30, what="the catalog synced")
                placed = checkout(buyer, "G-PAY-1", password="loop-pw-1", password2="loop-pw-1")
                assert placed.status_code == 303, placed.text[:300]
                order_path = placed.headers["location"].split("?")[0]
                began = time.monotonic()
                wait_until(lambda: 'id="pay-link"' in _page(buyer, order_path), 20, 0.05, what="the pay page")
                link_seconds = time.monotonic() - began
                page = _page(buyer, order_path)
                assert 'id="pay-qr"><svg' in page
                pay_url = re.search(r'id="pay-link" href="([^"]+)"', page).group(1).replace("&amp;", "&")
                assert pay_url.startswith(box.url + "submit.php?")
                cashier = httpx.get(pay_url)  # the buyer opens the link: the sandbox checks HQ's signature
                assert cashier.status_code == 200
                trade_no = re.search(r"/pay/(S[0-9a-f]+)", cashier.text).group(1)
                assert key["secret"] not in _page(buyer, order_path)  # nothing before the payment
                paid = httpx.post(f"{box.url}pay/{trade_no}")  # the payer pays; the sandbox notifies HQ
                assert paid.status_code in (200, 303)
                began = time.monotonic()
                wait_until(lambda: key["secret"] in _page(buyer, order_path), 20, 0.05, what="the card key")
                key_seconds = time.monotonic() - began
                assert box.trades[trade_no].notified == 1
                print(f"\npay link on the order page {link_seconds:.2f} s after checkout; "
                      f"card key {key_seconds:.2f} s after the payment")
        finally:
            agent.terminate()
