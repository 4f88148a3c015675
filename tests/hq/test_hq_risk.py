"""The risk engine: each rule fires on its own signal, the strongest action wins."""

from __future__ import annotations

from datetime import timedelta
from typing import Iterator

import pytest
from sqlalchemy import update

from hq import licences, orders
from hq.clock import utcnow
from hq.models import Site
from hq.order_checks import SiteContext
from hq.risk import parse_rules
from hq.schemas import OrderBatch
from hq.service import HQ
from hq.settings import HQSettings
from kitcore.errors import InvalidInput
from tests.hq.helpers import order

QUIET = {  # every limit out of the way, so one test enables one rule
    "limits": {"review_amount_cents": 10**9, "reject_amount_cents": 10**10, "review_quantity": 1000, "reject_quantity": 2000},
    "velocity": [],
    "site_daily": {"max_orders": 10**6, "max_amount_cents": 10**12},
    "new_site": {"days": 0},
    "foreign_region_action": None,
}


@pytest.fixture
def hq(tmp_path) -> Iterator[HQ]:
    service = HQ.open(HQSettings(dir=tmp_path / "hq", registry_url=None))
    from hq import catalog

    catalog.upsert(service, "t", "game-100", catalog.ItemSpec(name="g", category="game", face_value_cents=100,
                                                             price_cents=90, stock_kind="direct_topup", max_qty=1000))
    licences.issue(service, "t", "site-a", "pro", ["game"], 365)
    licences.issue(service, "t", "site-b", "pro", ["game"], 365)
    yield service
    service.close()


def rules(hq: HQ, **changes) -> None:
    hq.rules.save(parse_rules({**QUIET, **changes}))


def decide(hq: HQ, order_id: str, site: str = "site-a", **kw) -> dict:
    ctx = SiteContext(site, ("game",), ("CN",))
    batch = OrderBatch.model_validate({"orders": [order(order_id, sku="game-100", **kw)]})
    return orders.submit(hq, ctx, f"key-{site}-{order_id}", batch)[0][0]


def test_quiet_rules_approve(hq):
    rules(hq)
    assert decide(hq, "o1")["decision"] == "approve"


def test_velocity_per_account_across_sites(hq):
    rules(hq, velocity=[{"key": "account", "window_seconds": 600, "max_orders": 2, "action": "review"},
                        {"key": "account", "window_seconds": 600, "max_orders": 4, "action": "reject"}])
    results = [decide(hq, f"o{i}", site="site-a" if i % 2 else "site-b", account="p1")["decision"] for i in range(6)]
    assert results == ["approve", "approve", "review", "review", "reject", "reject"]
    assert decide(hq, "other", account="p2")["decision"] == "approve"
    r = decide(hq, "o-last", account="p1")
    assert r["reasons"] == ["velocity_account:2/600s", "velocity_account:4/600s"]


def test_velocity_window_expires(hq):
    rules(hq, velocity=[{"key": "ip", "window_seconds": 60, "max_orders": 1, "action": "reject"}])
    assert decide(hq, "o1", ip="203.0.113.9")["decision"] == "approve"
    assert decide(hq, "o2", ip="203.0.113.9")["decision"] == "reject"
    from hq.models import Order

    with hq.session() as s:
        s.execute(update(Order).values(received_at=utcnow() - timedelta(seconds=120)))
    assert decide(hq, "o3", ip="203.0.113.9")["decision"] == "approve"


def test_velocity_per_contact(hq):
    rules(hq, velocity=[{"key": "contact", "window_seconds": 600, "max_orders": 1, "action": "review"}])
    assert decide(hq, "o1", contact="a@x")["decision"] == "approve"
    assert decide(hq, "o2", contact="a@x", account="other")["reasons"] == ["velocity_contact:1/600s"]


def test_amount_and_quantity_limits(hq):
    rules(hq, limits={"review_amount_cents": 10_000, "reject_amount_cents": 100_000, "review_quantity": 5,
                      "reject_quantity": 50})
    assert decide(hq, "a", unit_price_cents=9_999)["decision"] == "approve"
    assert decide(hq, "b", unit_price_cents=10_000)["reasons"] == ["amount_over:10000"]
    assert decide(hq, "c", unit_price_cents=100_000)["decision"] == "reject"
    assert decide(hq, "d", unit_price_cents=1, quantity=5)["reasons"] == ["quantity_over:5"]
    assert decide(hq, "e", unit_price_cents=1, quantity=50)["decision"] == "reject"


def test_block_lists(hq):
    rules(hq, block={"accounts": ["bad-acct"], "contacts": ["bad@x"], "ips": ["203.0.113.0/24"], "regions": ["KP"]})
    assert decide(hq, "a", account="bad-acct")["reasons"] == ["blocked_account"]
    assert decide(hq, "b", contact="bad@x")["reasons"] == ["blocked_contact"]
    assert decide(hq, "c", ip="203.0.113.77")["reasons"] == ["blocked_ip"]
    assert decide(hq, "d", ip="198.51.100.1")["decision"] == "approve"
    assert decide(hq, "e", region="KP")["decision"] == "reject"


def test_site_daily_limits(hq):
    rules(hq, site_daily={"max_orders": 2, "max_amount_cents": 10**9, "action": "review"})
    assert [decide(hq, f"o{i}")["decision"] for i in range(3)] == ["approve", "approve", "review"]
    assert decide(hq, "other-site", site="site-b")["decision"] == "approve"
    rules(hq, site_daily={"max_orders": 100, "max_amount_cents": 25_000, "action": "reject"})
    assert decide(hq, "big", unit_price_cents=20_000)["reasons"] == ["site_daily_amount:25000"]


def test_new_site_limits_only_apply_to_new_sites(hq):
    rules(hq, new_site={"days": 7, "max_orders_per_day": 1, "max_amount_cents_per_order": 5_000, "action": "review"})
    assert decide(hq, "a", unit_price_cents=6_000)["reasons"] == ["new_site_amount:5000"]
    assert decide(hq, "b", unit_price_cents=100)["reasons"] == ["new_site_daily_orders:1"]
    with hq.session() as s:
        s.execute(update(Site).values(created_at=utcnow() - timedelta(days=30)))
    assert decide(hq, "c", unit_price_cents=6_000)["decision"] == "approve"


def test_foreign_region(hq):
    rules(hq, foreign_region_action="review")
    assert decide(hq, "a", region="CN-GD")["decision"] == "approve"
    assert decide(hq, "b", region="US")["reasons"] == ["region_outside_licence:US"]


def test_rules_file_is_data_edited_by_operators(hq):
    path = hq.settings.dir / "risk-rules.json"
    rules(hq)
    import json
    import os
    import time

    data = json.loads(path.read_text())
    data["block"]["accounts"] = ["edited"]
    path.write_text(json.dumps(data))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert decide(hq, "a", account="edited")["decision"] == "reject"
    path.write_text('{"velocity": [{"key": "phone", "window_seconds": 1, "max_orders": 1}]}')
    os.utime(path, (time.time() + 10, time.time() + 10))
    with pytest.raises(InvalidInput, match="risk rules: velocity.0.key"):
        hq.rules.load()
    assert decide(hq, "b", account="edited")["decision"] == "reject"  # the last good rules stay in force
