"""A plugin that raises, hangs, answers nonsense or overreaches costs the order nothing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from plugins.host import PluginHost
from sitedb.models import AuditEntry, Order
from tests.plugins import fixture_plugins as fx
from tests.plugins.helpers import checkout_ctx, error_count, event, place_order


def _host(registry, *classes) -> PluginHost:
    return PluginHost.load(["coupons"], sources=[fx.source(c) for c in classes], registry=registry)


def test_raising_plugin_is_skipped_and_counted_and_the_order_is_written(engine, registry):
    host = _host(registry, fx.RaisingPlugin, fx.FixedDiscountPlugin)
    adjustment, order_id = place_order(engine, host, checkout_ctx(fields={"raiser_code": "x"}))
    assert order_id is not None
    assert adjustment["discount_cents"] == 100
    assert adjustment["extras"]["_failed"] == ["raiser"]
    assert error_count(registry, "raiser", "adjust_checkout", "error") == 1


def test_hanging_plugin_is_abandoned_at_its_budget_and_cannot_touch_the_order_later(engine, registry):
    host = _host(registry, fx.HangingPlugin, fx.FixedDiscountPlugin)
    started = time.monotonic()
    adjustment, order_id = place_order(engine, host, checkout_ctx())
    assert time.monotonic() - started < 2.0  # budget 0.3 s, not the plugin's 30 s
    assert adjustment["discount_cents"] == 100 and adjustment["extras"]["_failed"] == ["hanger"]
    assert error_count(registry, "hanger", "adjust_checkout", "timeout") == 1
    fx.HANG_RELEASE.set()  # the late plugin now tries to zero every order's total
    time.sleep(0.3)
    fx.HANG_RELEASE.clear()
    with Session(engine) as s:
        assert s.get(Order, order_id).total_cents == 2 * 10_000 - 100


def test_a_wedged_plugin_is_skipped_without_spawning_more_threads(engine, registry):
    host = _host(registry, fx.HangingPlugin)
    for _ in range(3):
        place_order(engine, host, checkout_ctx())
    assert error_count(registry, "hanger", "adjust_checkout", "timeout") == 2
    assert error_count(registry, "hanger", "adjust_checkout", "busy") == 1
    fx.HANG_RELEASE.set()
    time.sleep(0.2)
    fx.HANG_RELEASE.clear()


def test_discounts_are_clamped_at_the_hq_price_floor(engine, registry):
    host = _host(registry, fx.GreedyPlugin, fx.FixedDiscountPlugin)
    ctx = checkout_ctx(quantity=3, unit_price_cents=10_000, hq_price_cents=9_500)
    adjustment, order_id = place_order(engine, host, ctx)
    assert adjustment["discount_cents"] == 3 * 500  # never below 3 * 9_500
    assert adjustment["extras"]["_clamped_cents"] == 30_000 + 100 - 1_500
    with Session(engine) as s:
        assert s.get(Order, order_id).total_cents == 3 * 9_500


def test_site_price_already_at_or_below_hq_floor_gets_no_discount(engine, registry):
    host = _host(registry, fx.FixedDiscountPlugin)
    adjustment, _ = place_order(engine, host, checkout_ctx(unit_price_cents=9_000, hq_price_cents=9_000))
    assert adjustment["discount_cents"] == 0


@pytest.mark.parametrize("answer", [-5, "100", 12.5, True, None, [1]])
def test_non_int_or_negative_discount_is_ignored(engine, registry, answer):
    host = PluginHost.load(["coupons"], sources=[fx.source(fx.nonsense_plugin(answer))], registry=registry)
    adjustment, order_id = place_order(engine, host, checkout_ctx())
    assert order_id is not None
    if answer is None:  # "no discount" is a valid answer
        assert adjustment["discount_cents"] == 0 and "_failed" not in adjustment["extras"]
    else:
        assert adjustment["discount_cents"] == 0 and adjustment["extras"]["_failed"] == ["nonsense"]
        assert error_count(registry, "nonsense", "adjust_checkout", "invalid") == 1


def test_a_failing_plugins_database_writes_are_rolled_back_but_the_order_stays(engine, registry):
    host = _host(registry, fx.WriteThenRaisePlugin)
    _, order_id = place_order(engine, host, checkout_ctx())
    with Session(engine) as s:
        assert s.get(Order, order_id) is not None
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "scribble")) == 0


def test_a_plugin_cannot_commit_the_buyers_transaction(engine, registry):
    host = _host(registry, fx.CommitterPlugin)
    with Session(engine) as session:
        session.execute(text("INSERT INTO audit_log (at, actor, action, detail) VALUES (CURRENT_TIMESTAMP, 'shop', 'pending', '{}')"))
        adjustment = host.adjust_checkout(session, checkout_ctx())
        session.rollback()  # the storefront changes its mind: nothing may have been committed
    assert adjustment["discount_cents"] == 0 and adjustment["extras"]["_failed"] == ["committer"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_events_never_raise_and_failures_are_counted(registry):
    host = _host(registry, fx.RaisingPlugin, fx.HangingPlugin)
    started = time.monotonic()
    host.emit("order_created", event("order_created"))
    host.emit("heartbeat", event("heartbeat"))
    host.emit("no_such_event", {})
    assert time.monotonic() - started < 0.2  # emit only queues
    assert host.flush(5)
    assert error_count(registry, "raiser", "order_created", "error") == 1
    assert error_count(registry, "hanger", "on_heartbeat", "timeout") == 1
    fx.HANG_RELEASE.set()
    time.sleep(0.1)
    fx.HANG_RELEASE.clear()


def test_field_values_are_checked_by_the_host_before_a_plugin_sees_them(engine, registry):
    host = PluginHost.load(["coupons"], registry=registry)
    too_long = "X" * 33
    adjustment, order_id = place_order(engine, host, checkout_ctx(fields={"coupon": too_long}))
    assert order_id is None
    assert adjustment["errors"] == {"coupon": "Coupon code must be at most 32 characters"}


def test_stack_fragments_merge_valid_plain_data_and_drop_a_core_service_override(registry):
    host = _host(registry, fx.StackPlugin, fx.BadStackPlugin)
    fragments = host.stack_fragments()
    assert set(fragments["services"]) == {"stacker-worker"}
    assert fragments["env"] == {"storefront": {"PLUGIN_STACKER_MODE": "on"}}
    assert fragments["volumes"] == {"stacker-data": {}}
    assert error_count(registry, "bad-stacker", "stack_fragment", "invalid") == 1


def test_card_keys_never_reach_a_plugin():
    from plugins.checks import redact

    payload = {"order_id": "A1", "delivery": {"card_keys": [{"serial": "S", "secret": "K"}]},
               "card_keys": [{"secret": "K"}], "items": [{"secret": "K", "sku": "G"}]}
    assert redact(payload) == {"order_id": "A1", "items": [{"sku": "G"}]}


@pytest.mark.postgres
def test_a_plugins_failed_sql_does_not_abort_the_order_on_postgres(pg_url, registry):
    from sitedb.engine import make_engine
    from sitedb.migrate import upgrade

    upgrade(pg_url)
    engine = make_engine(pg_url)
    try:
        host = _host(registry, fx.BadSQLPlugin, fx.WriteThenRaisePlugin, fx.FixedDiscountPlugin)
        adjustment, order_id = place_order(engine, host, checkout_ctx())
        assert order_id and adjustment["discount_cents"] == 100
        assert sorted(adjustment["extras"]["_failed"]) == ["bad-sql", "scribbler"]
        with Session(engine) as s:
            assert s.get(Order, order_id).total_cents == 20_000 - 100
            assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0
    finally:
        engine.dispose()


def test_an_event_whose_payload_is_not_the_documented_one_reaches_no_plugin_and_is_counted(registry):
    """plugins/events.py is the contract docs/plugins.md documents: a service sending anything else has a bug."""
    seen: list[dict] = []

    class Listener(fx.Plugin):
        manifest = fx.Manifest(name="listener", version="1.0", feature="coupons")

        def order_created(self, payload: dict) -> None:
            seen.append(payload)

    host = _host(registry, Listener)
    host.emit("order_created", {"order_id": "A1"})  # what the storefront used to send: no category, no extras
    host.emit("order_created", event("order_created", surprise=1))
    host.emit("order_created", event("order_created", order_id="A2"))
    assert host.flush(5)
    assert [p["order_id"] for p in seen] == ["A2"]
    assert error_count(registry, "*", "order_created", "invalid") == 2


def test_page_lines_that_fail_or_are_malformed_are_left_out_and_counted(registry):
    class Good(fx.Plugin):
        manifest = fx.Manifest(name="good", version="1.0", feature="coupons", api_version=2)

        def page_lines(self, slot: str, ctx: dict) -> list[str]:
            return [f"{slot}:{sorted(ctx)}:{ctx.get('extras')}"]

    class Raises(fx.Plugin):
        manifest = fx.Manifest(name="raises", version="1.0", feature="coupons", api_version=2)

        def page_lines(self, slot: str, ctx: dict) -> list[str]:
            raise RuntimeError("boom")

    class Rambles(fx.Plugin):
        manifest = fx.Manifest(name="rambles", version="1.0", feature="coupons", api_version=2)

        def page_lines(self, slot: str, ctx: dict) -> list[str]:
            return ["a", "b", "c", "d"] if slot == "product" else ["two\nlines"]

    host = _host(registry, Good, Raises, Rambles)
    product = {"sku": "G-1", "name": "card", "category": "game", "price_cents": 100, "currency": "CNY",
               "locale": "en", "hq_price_cents": 90}  # a key the slot does not list is not passed on
    assert host.page_lines("product", product) == [
        ("good", "product:['category', 'currency', 'locale', 'name', 'price_cents', 'sku']:None")]
    order = {"order_id": "A1", "sku": "G-1", "category": "game", "status": "delivered", "quantity": 1,
             "total_cents": 100, "currency": "CNY", "locale": "en",
             "extras": {"good": {"mine": 1}, "rambles": {"theirs": 2}}}
    [(plugin, line)] = host.page_lines("order", order)
    assert plugin == "good" and line.endswith(":{'mine': 1}")  # its own extras, never another plugin's
    assert error_count(registry, "raises", "page_lines", "error") == 2
    assert error_count(registry, "rambles", "page_lines", "invalid") == 2


def test_a_plugin_written_for_an_api_this_kit_does_not_offer_is_refused_in_one_line(registry):
    class Future(fx.Plugin):
        manifest = fx.Manifest(name="future-api", version="1.0", feature="coupons", api_version=3)

    host = _host(registry, Future)
    assert host.loaded == []
    assert host.refused["future-api"] == "future-api is not a valid plugin: targets plugin API 3; this kit offers 1, 2"
