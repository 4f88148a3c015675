"""Catalog sync against the real HQ server, into SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.state import read_state
from sitedb.models import CatalogItem, PriceRule


@pytest.fixture
def hq(tmp_path):  # type: ignore[no-untyped-def]
    """A fresh HQ per test: these tests assert the exact catalog."""
    from hq.testing import running_hq

    with running_hq(tmp_path) as server:
        yield server


def items(engine) -> dict[str, CatalogItem]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return {i.sku: i for i in s.scalars(select(CatalogItem))}


def seed(hq, n: int, prefix: str = "g", category: str = "game", price: int = 9500) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        hq.seed_item(f"{prefix}{i:04d}", category=category, price_cents=price, stock_kind="direct_topup")


def test_sync_pages_tombstones_and_categories(hq, started, engine) -> None:  # type: ignore[no-untyped-def]
    seed(hq, 25)
    hq.seed_item("mem-1", category="membership", price_cents=1000)  # not licensed: never appears
    started.sync.page_limit = 10
    result = started.sync.run()
    assert result.complete and result.pages == 3 and result.upserts == 25
    got = items(engine)
    assert sorted(got) == [f"g{i:04d}" for i in range(25)]
    assert got["g0003"].hq_price_cents == 9500 and got["g0003"].price_cents == 9500

    from hq import catalog

    catalog.remove(hq.service, "test", "g0003")
    hq.seed_item("g0004", category="game", price_cents=9900, stock_kind="direct_topup")
    result = started.sync.run()
    assert (result.mode, result.deletes, result.upserts) == ("incremental", 1, 1)
    got = items(engine)
    assert "g0003" not in got and got["g0004"].hq_price_cents == 9900
    assert read_state(engine).last_sync_at is not None


def test_unchanged_items_cost_no_write_and_304(hq, started, engine) -> None:  # type: ignore[no-untyped-def]
    seed(hq, 5)
    started.sync.run()
    before = {sku: (i.updated_at, i.hq_version) for sku, i in items(engine).items()}
    # HQ re-sends an item with a new version but identical content: no row is written
    hq.seed_item("g0001", category="game", price_cents=9500, stock_kind="direct_topup")
    result = started.sync.run()
    assert result.unchanged == 1 and result.upserts == 0
    after = {sku: (i.updated_at, i.hq_version) for sku, i in items(engine).items()}
    assert after == before
    # nothing changed at all: an empty page stores the ETag, then HQ answers 304
    started.sync.run()
    result = started.sync.run()
    assert result.not_modified


def test_price_rules_and_floor(hq, started, engine) -> None:  # type: ignore[no-untyped-def]
    hq.seed_item("g-a", category="game", price_cents=9500, stock_kind="direct_topup")
    hq.seed_item("p-b", category="phone", price_cents=4990, stock_kind="direct_topup")
    hq.seed_item("g-c", category="game", price_cents=1000, stock_kind="direct_topup")
    with Session(engine) as s, s.begin():
        s.add_all([
            PriceRule(id=1, scope="all", kind="percent", value=1000, rounding="none", enabled=True),  # +10 %
            PriceRule(id=2, scope="category", target="phone", kind="fixed", value=200, rounding="yuan_minus_1",
                      enabled=True),
            PriceRule(id=3, scope="sku", target="g-c", kind="fixed", value=-500, rounding="none", enabled=True),
        ])
    started.sync.run()
    got = items(engine)
    assert (got["g-a"].price_cents, got["g-a"].price_rule_id) == (10450, 1)
    assert (got["p-b"].price_cents, got["p-b"].price_rule_id) == (5199, 2)
    assert (got["g-c"].price_cents, got["g-c"].price_rule_id) == (1000, 3)  # floor: never below HQ's price
    assert got["g-a"].hq_price_cents == 9500
    # the owner changes a rule: the next run reprices without HQ sending anything
    with Session(engine) as s, s.begin():
        s.get(PriceRule, 1).value = 2000
    started.sync.run()
    assert items(engine)["g-a"].price_cents == 11400


def test_cursor_expired_resyncs_without_emptying(hq, started, engine) -> None:  # type: ignore[no-untyped-def]
    from hq import catalog
    from hq.models import CatalogItem as HQItem, Meta

    seed(hq, 30)
    started.sync.page_limit = 7
    started.sync.run()
    gone = catalog.remove(hq.service, "test", "g0005")
    hq.seed_item("g0006", category="game", price_cents=7000, stock_kind="direct_topup")
    # HQ prunes the tombstone and its change log past our cursor: the next request gets 410
    with hq.service.session() as s:
        s.delete(s.get(HQItem, "g0005"))
        s.get(Meta, "catalog_pruned_through").value = str(gone["version"])
    seen_sizes: list[int] = []

    def after_page(n: int) -> None:
        seen_sizes.append(len(items(engine)))
        if n == 1:  # HQ (as of this writing) also refuses the resync's own early cursors; let the walk go on
            with hq.service.session() as s:
                s.get(Meta, "catalog_pruned_through").value = "0"

    started.sync.after_page = after_page
    result = started.sync.run()
    assert result.mode == "full" and result.complete and result.pages == 5
    assert min(seen_sizes[:-1]) >= 30 and seen_sizes[-1] == 29, "the catalog was emptied during the resync"
    got = items(engine)
    # the deletion HQ pruned is still applied: mark and sweep removed it
    assert "g0005" not in got and len(got) == 29 and result.swept == 1
    assert got["g0006"].hq_price_cents == 7000
    assert read_state(engine).catalog_cursor.startswith("inc:")
    assert started.sync.run().upserts == 0
