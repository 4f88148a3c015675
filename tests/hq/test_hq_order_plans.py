"""A single order costs the same at any table size: the plans of its statements are pinned on PostgreSQL.

With 20,000 orders already received today for the same site, every SELECT
the single-order path runs must reach `orders`, `card_keys` and
`idempotency_keys` through an index and read a handful of rows. Counting the
site's day from `orders` (before `site_days`) read all 20,000.
"""

from __future__ import annotations

import pytest

from tests.hq.helpers import open_hq
from tests.hq.plans import SCALING_TABLES, fill_orders, single_order_plans

pytestmark = pytest.mark.postgres


@pytest.fixture
def busy_hq(tmp_path, hq_pg_server, hq_pg_template):
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url:
        service = open_hq(tmp_path / "hq", url, card_keys=3000)
        fill_orders(url, ["site-a"], 0, 20_000, seconds=1)  # all of them in today's count
        yield service
        service.close()


def test_the_single_order_path_reads_a_handful_of_rows_whatever_the_table_holds(busy_hq):
    result, explained = single_order_plans(busy_hq, "site-a", 1, sku="card-1", categories=("game",))
    assert result["decision"] == "review" and "site_daily_orders:10000" in result["reasons"]  # the day was counted
    touched = [e for e in explained if e.tables() & set(SCALING_TABLES)]
    assert len(touched) >= 4, [e.sql for e in explained]  # known orders, three velocity signals at least
    for e in touched:
        assert not e.seq_scans() & set(SCALING_TABLES), e.sql
        assert e.rows_read("orders") <= 5, (e.rows_read("orders"), e.sql)


def test_an_approved_order_takes_its_card_key_by_index(busy_hq):
    from hq.risk import Rules

    rules = Rules().model_dump(mode="json")
    rules["site_daily"]["max_orders"] = 1_000_000
    rules["site_daily"]["max_amount_cents"] = 1_000_000_000
    rules["new_site"]["days"] = 0
    busy_hq.rules.save(Rules.model_validate(rules))
    result, explained = single_order_plans(busy_hq, "site-a", 2, sku="card-1", categories=("game",))
    assert result["decision"] == "approve", result
    keys = [e for e in explained if "card_keys" in e.tables()]
    assert keys and all(not e.seq_scans() and e.rows_read("card_keys") <= 2 for e in keys), [e.sql for e in keys]


def _totals_agree(service) -> list[tuple]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    day = "(received_at AT TIME ZONE 'UTC')::date" if service.engine.dialect.name == "postgresql" else "date(received_at)"
    with service.engine.connect() as conn:
        counted = conn.execute(text(f"SELECT site_id, {day}, count(*), sum(unit_price_cents * quantity) FROM orders "
                                    "GROUP BY 1, 2 ORDER BY 1, 2")).all()
        kept = conn.execute(text("SELECT site_id, day, orders, amount_cents FROM site_days ORDER BY 1, 2")).all()
    assert [tuple(map(str, r)) for r in kept] == [tuple(map(str, r)) for r in counted]
    return counted


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_site_days_add_up_the_orders_whichever_path_wrote_them(tmp_path, db, request):
    from contextlib import ExitStack

    from hq import orders
    from hq.order_checks import SiteContext
    from hq.schemas import OrderBatch
    from tests.hq import pg
    from tests.hq.plans import one_order

    with ExitStack() as stack:
        url = None
        if db == "postgres":
            url = stack.enter_context(pg.fresh_database(request.getfixturevalue("hq_pg_server"),
                                                        template=request.getfixturevalue("hq_pg_template")))
        service = open_hq(tmp_path / "hq", url, card_keys=10)
        stack.callback(service.close)
        ctx = SiteContext("site-a", ("game",), ("CN",))
        batch = OrderBatch.model_validate({"orders": [one_order(n, "card-1", "203.0.113.9") for n in range(4)]})
        orders.submit(service, ctx, "batch", batch)  # the batch path
        orders.decide_one(service, ctx, batch.orders[0].model_copy(update={"order_id": "single"}))  # the per-order path
        if url:
            fill_orders(url, ["site-a"], 0, 500, seconds=60)  # one bulk statement
        counted = _totals_agree(service)
        assert sum(r[2] for r in counted) == 5 + (500 if url else 0)
