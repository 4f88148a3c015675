"""The page writers on SQLite and PostgreSQL: new, changed and unchanged rows in one page."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select

from agent.catalog_write import page_writer
from agent.hq_client import CatalogEntry
from agent.sync import RuleIndex, plan_page
from sitedb.pricing import Rule
from sitedb.tables import catalog_items
from tests.agent.helpers import migrated_engine


def entry(sku: str, price: int = 900, version: int = 1, **kw: object) -> CatalogEntry:
    return CatalogEntry(sku=sku, version=version, name=f"item {sku}", category="game", face_value_cents=1000,
                        price_cents=price, stock_kind="card_key", **kw)  # type: ignore[arg-type]


def stored(engine) -> dict[str, Row[Any]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {i.sku: i for i in conn.execute(select(catalog_items))}


def write(engine, entries: list[CatalogEntry], index: RuleIndex, mark: int | None) -> list[str]:  # type: ignore[no-untyped-def]
    rows, _ = plan_page(entries, index, mark or 0)
    with engine.begin() as conn:
        return sorted(r[0] for r in page_writer(engine).write(conn, rows, mark))


def test_a_page_of_new_changed_and_unchanged_rows(site_db_url: str) -> None:
    engine = migrated_engine(site_db_url)
    try:
        plain = RuleIndex([])
        assert write(engine, [entry("a"), entry("b"), entry("c")], plain, None) == ["a", "b", "c"]
        before = stored(engine)
        # b's HQ content changes, c's selling price changes by a new rule, a is re-sent as is, d is new
        markup = RuleIndex([Rule("sku", "c", "fixed", 100, "none", True, id=7)])
        page = [entry("a", version=5), entry("b", price=990, version=6), entry("c", version=7), entry("d")]
        assert write(engine, page, markup, mark=4) == ["b", "c", "d"]
        after = stored(engine)
        assert (after["a"].updated_at, after["a"].hq_version) == (before["a"].updated_at, 1)  # no write…
        assert after["a"].sync_mark == 4  # …but seen by the resync walk: the sweep keeps it
        assert (after["b"].hq_price_cents, after["b"].price_cents, after["b"].hq_version) == (990, 990, 6)
        assert (after["c"].price_cents, after["c"].price_rule_id) == (1000, 7)
        assert after["d"].sync_mark == 4 and after["b"].sync_mark == 4
        # the same page again changes nothing
        assert write(engine, page, markup, mark=4) == []
    finally:
        engine.dispose()


def test_a_sku_twice_in_a_page_keeps_the_later_entry(site_db_url: str) -> None:
    engine = migrated_engine(site_db_url)
    try:
        assert write(engine, [entry("a", price=100, version=1), entry("a", price=200, version=2)],
                     RuleIndex([]), None) == ["a"]
        assert stored(engine)["a"].hq_price_cents == 200
    finally:
        engine.dispose()
