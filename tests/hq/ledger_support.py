"""An in-process HQ for settlement tests: site-a (pro, 12%) and site-b (basic, 15%) licensed for games and phones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hq import catalog, licences, orders
from hq.models import LedgerEntry
from hq.order_checks import SiteContext
from hq.risk import parse_rules
from hq.schemas import OrderBatch
from hq.service import HQ
from hq.settings import HQSettings
from tests.hq.helpers import order
from tests.hq.test_hq_risk import QUIET

HQ_PRICE = 90  # fen a unit of `topup` (game) and of `phone-10` (phone)


def open_settlement_hq(directory: Path, database_url: str | None) -> HQ:
    service = HQ.open(HQSettings(dir=directory, database_url=database_url, registry_url=None))
    for sku, category in (("topup", "game"), ("phone-10", "phone")):
        catalog.upsert(service, "t", sku, catalog.ItemSpec(name=sku, category=category, face_value_cents=100,
                                                          price_cents=HQ_PRICE, stock_kind="direct_topup",
                                                          max_qty=100))
    licences.issue(service, "t", "site-a", "pro", ["game", "phone"], 365)
    licences.issue(service, "t", "site-b", "basic", ["game", "phone"], 365)
    service.rules.save(parse_rules(QUIET))
    return service


def buy(hq: HQ, site: str, order_id: str, unit_price: int, quantity: int = 1, sku: str = "topup",
        key: str | None = None) -> dict[str, Any]:
    """Submit one order on the batch path; its result."""
    ctx = SiteContext(site, ("game", "phone"), ("CN",))
    item = {**order(order_id, sku=sku, quantity=quantity, unit_price_cents=unit_price),
            "created_at": "2030-01-01T00:00:00Z"}  # the same body when sent again
    batch = OrderBatch.model_validate({"orders": [item]})
    return orders.submit(hq, ctx, key or f"k-{order_id}", batch)[0][0]


def entry_count(hq: HQ, kind: str | None = None) -> int:
    with hq.read() as conn:
        query = select(func.count()).select_from(LedgerEntry)
        if kind:
            query = query.where(LedgerEntry.kind == kind)
        return int(conn.scalar(query) or 0)
