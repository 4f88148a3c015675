"""A batch decided in one transaction (hq.batch) decides exactly as one order at a time would."""

from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy import func, select

from hq import catalog, inventory, licences, orders
from hq.models import CardKey, Order
from hq.order_checks import SiteContext
from hq.risk import parse_rules
from hq.schemas import OrderBatch
from hq.service import HQ
from hq.settings import HQSettings
from tests.hq.helpers import order
from tests.hq.test_hq_risk import QUIET

RULES = {**QUIET,
         "velocity": [{"key": "account", "window_seconds": 600, "max_orders": 2, "action": "review"},
                      {"key": "account", "window_seconds": 600, "max_orders": 4, "action": "reject"},
                      {"key": "ip", "window_seconds": 600, "max_orders": 5, "action": "review"}],
         "site_daily": {"max_orders": 9, "max_amount_cents": 10**9, "action": "review"},
         "limits": {**QUIET["limits"], "review_quantity": 3}}


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    """On SQLite and on PostgreSQL (the batch path has PostgreSQL-only statements)."""
    service = HQ.open(HQSettings(dir=tmp_path / "hq", database_url=db_url, registry_url=None))
    catalog.upsert(service, "t", "card-1", catalog.ItemSpec(name="c", category="game", face_value_cents=100,
                                                           price_cents=90, max_qty=10))
    rows = "".join(f"card-1,S{i:03d},secret-{i}\n" for i in range(2))
    inventory.import_csv(service, "t", "sku,serial,secret\n" + rows)
    for site in ("site-a", "site-b"):
        licences.issue(service, "t", site, "pro", ["game"], 365)
    service.rules.save(parse_rules(RULES))
    yield service
    service.close()


def _orders() -> list[dict]:
    """Velocity, site-daily, quantity, unknown-SKU and out-of-stock cases interleaved."""
    out = [order(f"o{i}", sku="card-1", account="p1" if i % 3 else "p2", ip=f"198.51.100.{i % 2}",
                 quantity=3 if i == 4 else 1) for i in range(11)]
    out.insert(5, order("ghost", sku="no-such-sku"))
    return out


def _summary(results: list[dict]) -> list[tuple]:
    return [(r["order_id"], r["decision"], r["status"], tuple(r["reasons"]),
             len(r["delivery"]["card_keys"]) if r["delivery"] else None) for r in results]


def _submit(hq: HQ, site: str, key: str, items: list[dict]) -> list[dict]:
    ctx = SiteContext(site, ("game",), ("CN",))
    return orders.submit(hq, ctx, key, OrderBatch.model_validate({"orders": items}))[0]


def test_batches_never_sell_a_key_twice_and_record_every_order(hq):
    items = _orders()
    batched = _submit(hq, "site-a", "batch", items)
    more = _submit(hq, "site-b", "batch", [{**o, "order_id": "b-" + o["order_id"]} for o in items])
    assert [r["order_id"] for r in batched] == [o["order_id"] for o in items]
    delivered = [k["serial"] for r in batched + more if r["delivery"] for k in r["delivery"]["card_keys"]]
    assert len(delivered) == len(set(delivered)) > 0
    with hq.session() as s:
        assert s.scalar(select(func.count()).select_from(CardKey).where(CardKey.status == "sold")) == len(delivered)
        assert s.scalar(select(func.count()).select_from(Order)) == 2 * len(items)


def test_batch_equals_sequential_on_a_fresh_hq(tmp_path, hq):
    items = _orders()
    batched = _summary(_submit(hq, "site-a", "batch", items))
    fresh = HQ.open(HQSettings(dir=tmp_path / "hq2", registry_url=None))  # reference: SQLite, one at a time
    try:
        catalog.upsert(fresh, "t", "card-1", catalog.ItemSpec(name="c", category="game", face_value_cents=100,
                                                             price_cents=90, max_qty=10))
        inventory.import_csv(fresh, "t", "sku,serial,secret\n" + "".join(f"card-1,S{i:03d},x{i}\n" for i in range(2)))
        licences.issue(fresh, "t", "site-a", "pro", ["game"], 365)
        fresh.rules.save(parse_rules(RULES))
        sequential = _summary([_submit(fresh, "site-a", f"k{i}", [o])[0] for i, o in enumerate(items)])
    finally:
        fresh.close()
    assert batched == sequential
    decisions = {d for _, d, *_ in batched}
    assert decisions == {"approve", "review", "reject"}  # the cases really exercise the rules
    assert any("out_of_stock" in reasons for *_, reasons, _ in batched)


def test_batch_with_a_known_order_replays_it_and_decides_the_rest(hq):
    o1 = order("o1", sku="card-1", account="x")
    first = _submit(hq, "site-a", "k1", [o1])[0]
    both = _submit(hq, "site-a", "k2", [o1, order("o2", sku="card-1", account="y")])
    assert both[0]["replayed"] and both[0]["hq_order_id"] == first["hq_order_id"]
    assert both[0]["delivery"] == first["delivery"]
    assert not both[1]["replayed"] and both[1]["decision"] == "approve"
