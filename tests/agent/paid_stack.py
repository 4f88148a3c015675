"""Storefront and agent (real processes, one site database), HQ served with epay enabled, the epay sandbox as the
gateway (no containers: bench/paid_checkouts_bench.py), and the buyers who check out and pay, which the loop e2e's
200 paid checkouts through the containers (tests/e2e/test_loop.py) and bench/paid_checkouts_containers_bench.py
send too."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx

from hq.payments import config
from hq.payments.sandbox_epay import EpaySandbox, serving
from hq.testing import RunningHQ, running_hq
from tests.agent.helpers import OPEN_RULES, AgentProcess, make_site_dir, sqlite_url, wait_until
from tests.storefront.http import checkout
from tests.storefront.support import running_storefront, write_site_files
from tests.support.kit_stack import SECRET  # the card-key cells of the order page, read in one place
from tests.support.resend import client

SKU = "G-PAY-N"
PAY_LINK = re.compile(r'id="pay-link" href="([^"]+)"')
SEEN = (re.compile(r"<title>([^<]*)</title>"), re.compile(r'id="order-status">\s*([^<]*?)\s*<'))


def page_title(html: str) -> str:
    """A page's title (and an order's status), to name in a failure what the buyer saw instead."""
    seen = [found.group(1).strip() for pattern in SEEN if (found := pattern.search(html))]
    return " / ".join(seen) or html[:120]


class Buyer:
    """One buyer: their own cookies (the order page is theirs), one order, its pay link, its card key.

    Like a browser, a buyer sends a GET again when the server dropped it unanswered (a keep-alive connection
    the storefront closed as it was reused: polling 200 buyers, each one's connection idles for seconds);
    tests.support.resend bounds that and names the server that dropped it."""

    def __init__(self, base: str, n: int, sku: str = SKU, verify: bool = True) -> None:
        self.client = client("storefront", base, verify=verify, timeout=60)
        self.cashier = client("epay sandbox", timeout=60)
        self.n = n
        self.sku = sku
        self.path = ""
        self.paid_at = 0.0  # monotonic, when the sandbox took the payment

    def order(self) -> None:
        placed = checkout(self.client, self.sku, contact=f"buyer-{self.n}@example.cn", password="pay-pw-123",
                          password2="pay-pw-123")
        assert placed.status_code == 303, placed.text[:300]
        self.path = placed.headers["location"].split("?")[0]

    def status(self) -> str:
        return str(self.client.get(f"{self.path}/status").json()["status"])

    def pay(self, fault: str | None = None) -> str:
        """Open the pay link at the sandbox and pay (pressing the cashier's `fault` button, if given); the
        sandbox's trade number."""
        page = self.client.get(self.path)
        found = PAY_LINK.search(page.text)
        assert found, f"no pay link on {self.path}: {page.status_code} {page_title(page.text)!r}"
        link = found.group(1).replace("&amp;", "&")
        cashier = self.cashier.get(link)
        trade_no = re.search(r"/pay/(S[0-9a-f]+)", cashier.text).group(1)
        paid = self.cashier.post(link.split("submit.php")[0] + f"pay/{trade_no}", data={"fault": fault} if fault else None)
        self.paid_at = time.monotonic()
        assert paid.status_code == 303, paid.text[:300]
        return trade_no

    def order_and_pay(self, payable_within: float) -> str:
        """Check out, wait (bounded) for the pay step, pay: a buyer who pays as soon as the shop asks; the trade."""
        self.order()
        wait_until(lambda: self.status() == "pending_payment", payable_within, 0.5, what=f"order {self.path} payable")
        return self.pay()

    def secrets(self) -> list[str]:
        return SECRET.findall(self.client.get(self.path).text)

    def resent(self) -> int:
        """GETs a server dropped unanswered that this buyer sent again (a figure for the report)."""
        return sum(c._transport.resent for c in (self.client, self.cashier))  # type: ignore[attr-defined]


def place_until_payable(pool: Any, buyers: list[Buyer], within: float = 300) -> tuple[float, float, float]:
    """Every buyer checks out on `pool`, then their pages are read until each shows its pay step (SystemExit past
    `within` s): monotonic times (began, last checkout placed, all payable), for the benchmarks."""
    began = time.monotonic()
    list(pool.map(Buyer.order, buyers))
    placed = time.monotonic()
    while set(pool.map(Buyer.status, buyers)) != {"pending_payment"}:
        if time.monotonic() - placed > within:
            raise SystemExit(f"orders did not become payable in {within:.0f} s")
    return began, placed, time.monotonic()


@dataclass
class PaidStack:
    hq: RunningHQ
    box: EpaySandbox
    base: str
    keys: list[dict[str, str]]


@contextmanager
def paid_stack(tmp_path: Path, orders: int, **agent: Any) -> Iterator[PaidStack]:
    """The stack with `orders` + 20 card keys for SKU and every buyer rule open (one address, many orders)."""
    # 8 tries over about a minute: 200 notifications at once on a loaded machine can keep HQ past the sandbox's 5 s
    # timeout more than 5 times running (then the order waits for HQ's query after expiry, 15 min away)
    with serving(EpaySandbox(notify_delay=0.2, notify_attempts=8)) as box, \
            running_hq(tmp_path, site_rate_per_second=10_000, site_rate_burst=10_000) as hq:
        hq.set_rules(OPEN_RULES)
        hq.seed_item(SKU, category="game", name="点卡 10 元", price_cents=900)
        keys = hq.seed_card_keys(SKU, orders + 20)  # more keys than orders: a key sold twice would not run short
        pid, merchant_key = box.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": box.url, "pid": pid, "key": merchant_key})
        db = sqlite_url(tmp_path)
        site = make_site_dir(tmp_path, hq, db, site_id="xingchen", categories=["game"])
        process = AgentProcess(site, tmp_path / "agent.log", stack_probes="", **agent).start()
        try:
            env = {**write_site_files(tmp_path / "shop"), "KIT_SITE_KEY_FILE": str(site.site_key_file),
                   "KIT_STATE_CACHE_SECONDS": "0", "KIT_CHECKOUTS_PER_MINUTE": "100000"}
            with running_storefront(db, env, tmp_path / "storefront.log") as base:
                probe = httpx.Client(base_url=base, timeout=30)
                wait_until(lambda: probe.get(f"/p/{SKU}").status_code == 200, 30, what="the catalog synced")
                yield PaidStack(hq, box, base, keys)
        finally:
            process.terminate()
