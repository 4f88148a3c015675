"""Coupons: percent/fixed, window, usage limit counted with the order, category scope, HQ floor."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kitcore.errors import InvalidInput
from kitcore.licence.tiers import TIERS
from plugins.coupons.tables import coupons
from plugins.host import PluginHost
from kitctl.siteplugins import SiteLicence, run_admin
from tests.plugins.helpers import checkout_ctx, place_order

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
PRO = SiteLicence("pro", TIERS["pro"].features)


def add(site_dir, url, **args) -> list[dict]:
    pairs = [f"{k}={v}" for k, v in args.items()]
    return run_admin(site_dir, "coupons", "add", pairs, url, PRO)


def used(url: str, code: str) -> int:
    from sitedb.engine import make_engine

    engine = make_engine(url)
    with Session(engine) as s:
        count = s.scalar(select(coupons.c.used_count).where(coupons.c.code == code))
    engine.dispose()
    return count


@pytest.fixture
def host() -> PluginHost:
    return PluginHost.load(TIERS["pro"].features)


def test_percent_coupon_discounts_the_order_and_counts_one_use(site_dir, site_db, engine, host):
    add(site_dir, site_db, code="spring10", percent=10)
    adjustment, order_id = place_order(engine, host, checkout_ctx(fields={"coupon": " Spring10 "}, hq_price_cents=5_000))
    assert order_id and adjustment["discount_cents"] == 2_000  # 10 % of 2 x 100.00
    assert adjustment["extras"]["coupons"] == {"code": "SPRING10", "discount_cents": 2_000}
    assert used(site_db, "SPRING10") == 1


def test_fixed_coupon_is_clamped_at_the_hq_floor(site_dir, site_db, engine, host):
    add(site_dir, site_db, code="BIGFIX", fixed_cents=50_000)
    adjustment, order_id = place_order(engine, host, checkout_ctx(quantity=2, unit_price_cents=10_000, hq_price_cents=9_000))
    assert adjustment["discount_cents"] == 0  # no coupon typed
    adjustment, order_id = place_order(engine, host, checkout_ctx(fields={"coupon": "bigfix"}, quantity=2, unit_price_cents=10_000, hq_price_cents=9_000))
    assert adjustment["discount_cents"] == 2_000  # total 18 000 = 2 x HQ price
    assert adjustment["extras"]["_clamped_cents"] == 18_000


def test_validity_window(site_dir, site_db, engine, host):
    add(site_dir, site_db, code="JUNE", percent=5, valid_from="2026-06-01T00:00:00Z", valid_until="2026-07-01T00:00:00Z")
    early, _ = place_order(engine, host, checkout_ctx(fields={"coupon": "JUNE"}, now=NOW - timedelta(days=1)))
    inside, order_id = place_order(engine, host, checkout_ctx(fields={"coupon": "JUNE"}, now=NOW))
    late, _ = place_order(engine, host, checkout_ctx(fields={"coupon": "JUNE"}, now=NOW + timedelta(days=30)))
    assert early["errors"] == {"coupon": "coupon JUNE is not valid yet"}
    assert inside["discount_cents"] == 1_000 and order_id
    assert late["errors"] == {"coupon": "coupon JUNE has expired"}
    assert used(site_db, "JUNE") == 1  # refused checkouts count nothing


def test_usage_limit_and_a_rolled_back_checkout_does_not_use_the_coupon(site_dir, site_db, engine, host):
    add(site_dir, site_db, code="ONCE", fixed_cents=100, max_uses=1)
    with Session(engine) as session:  # the buyer's checkout fails after the coupon applied
        assert host.adjust_checkout(session, checkout_ctx(fields={"coupon": "ONCE"}))["discount_cents"] == 100
        session.rollback()
    assert used(site_db, "ONCE") == 0
    first, order_id = place_order(engine, host, checkout_ctx(fields={"coupon": "ONCE"}))
    second, none = place_order(engine, host, checkout_ctx(fields={"coupon": "ONCE"}))
    assert first["discount_cents"] == 100 and order_id
    assert second["errors"] == {"coupon": "coupon ONCE has been used up"} and none is None
    assert used(site_db, "ONCE") == 1


def test_category_scope_minimum_and_unknown_codes(site_dir, site_db, engine, host):
    add(site_dir, site_db, code="PHONEONLY", percent=20, categories="phone,membership")
    add(site_dir, site_db, code="MIN500", fixed_cents=1_000, min_total_cents=50_000)
    wrong, _ = place_order(engine, host, checkout_ctx(fields={"coupon": "PHONEONLY"}, category="game"))
    right, _ = place_order(engine, host, checkout_ctx(fields={"coupon": "PHONEONLY"}, category="phone", hq_price_cents=1))
    small, _ = place_order(engine, host, checkout_ctx(fields={"coupon": "MIN500"}))
    unknown, _ = place_order(engine, host, checkout_ctx(fields={"coupon": "NOPE"}))
    assert wrong["errors"] == {"coupon": "coupon PHONEONLY does not apply to this category"}
    assert right["discount_cents"] == 4_000
    assert small["errors"] == {"coupon": "coupon MIN500 needs an order of at least 500.00"}
    assert unknown["errors"] == {"coupon": "coupon NOPE is not valid"}


def test_disabled_coupon_and_admin_errors(site_dir, site_db, engine, host):
    add(site_dir, site_db, code="OFFNOW", percent=10)
    run_admin(site_dir, "coupons", "disable", ["code=offnow"], site_db, PRO)
    refused, _ = place_order(engine, host, checkout_ctx(fields={"coupon": "OFFNOW"}))
    assert refused["errors"] == {"coupon": "coupon OFFNOW is not valid"}
    rows = run_admin(site_dir, "coupons", "list", [], site_db, PRO)
    assert [(r["code"], r["enabled"]) for r in rows] == [("OFFNOW", False)]
    with pytest.raises(InvalidInput, match="already exists"):
        add(site_dir, site_db, code="offnow", percent=5)
    with pytest.raises(InvalidInput, match="exactly one of percent or fixed_cents"):
        add(site_dir, site_db, code="BOTH", percent=5, fixed_cents=100)
    with pytest.raises(InvalidInput, match="percent"):
        add(site_dir, site_db, code="HUGE", percent=150)
    with pytest.raises(InvalidInput, match="coupons needs feature 'coupons' \\(tier pro or higher\\); this licence is basic"):
        run_admin(site_dir, "coupons", "list", [], site_db, SiteLicence("basic", TIERS["basic"].features))


def test_a_fresh_database_without_the_table_refuses_codes_and_sells_normally(engine, host):
    from sqlalchemy import inspect

    refused, none = place_order(engine, host, checkout_ctx(fields={"coupon": "ANY"}))
    plain, order_id = place_order(engine, host, checkout_ctx())
    assert refused["errors"] == {"coupon": "coupon ANY is not valid"} and none is None
    assert plain["discount_cents"] == 0 and order_id
    assert not inspect(engine).has_table("plugin_coupons")  # no DDL inside a checkout


def test_prepare_database_through_the_host_creates_the_table(engine, host):
    from sqlalchemy import inspect

    host.prepare_database(engine)
    host.prepare_database(engine)  # idempotent
    assert inspect(engine).has_table("plugin_coupons")


@pytest.mark.postgres
def test_concurrent_checkouts_respect_the_usage_limit_on_postgres(site_dir, pg_url):
    from sitedb.engine import make_engine
    from sitedb.migrate import upgrade

    upgrade(pg_url)
    host = PluginHost.load(TIERS["pro"].features)
    add(site_dir, pg_url, code="RACE", percent=10, max_uses=3)
    engine = make_engine(pg_url)
    results: list[str | None] = []
    barrier = threading.Barrier(6)

    def buyer() -> None:
        barrier.wait()
        adjustment, order_id = place_order(engine, host, checkout_ctx(fields={"coupon": "RACE"}))
        results.append(order_id)

    threads = [threading.Thread(target=buyer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    engine.dispose()
    assert sum(1 for r in results if r) == 3 and len(results) == 6
    assert used(pg_url, "RACE") == 3
