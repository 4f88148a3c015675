"""plugins.testing, the test kit shipped in the kit's wheel (issue 28, case 8): the real host, a seeded shop, typed events."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from plugins import testing
from plugins.contract import Manifest, Plugin
from sitedb.tables import catalog_items


class Recorder(Plugin):
    manifest = Manifest(name="recorder", version="1.0", feature="recorder", api_version=2)
    seen: list[dict[str, Any]] = []

    def on_heartbeat(self, payload: dict[str, Any]) -> None:
        Recorder.seen.append(payload)

    def page_lines(self, slot: str, ctx: dict[str, Any]) -> list[str]:
        return [f"{ctx['name']} at {ctx['price_cents']} ({ctx['locale']})"]


class FromTheFuture(Plugin):
    manifest = Manifest(name="future", version="1.0", feature="future", api_version=2)


def test_load_runs_the_real_host_with_the_plugins_own_feature() -> None:
    host = testing.load(Recorder)
    assert host.loaded == ["recorder"]
    assert host.page_lines("product", testing.product_context("zh-CN")) == [("recorder", "Game card 100 at 1999 (zh-CN)")]


def test_deliver_sends_a_typed_payload_and_waits_for_the_hook() -> None:
    Recorder.seen.clear()
    host = testing.load(Recorder)
    sent = testing.deliver(host, "heartbeat", licence_status="suspended")
    assert Recorder.seen == [sent] and sent == {"interval_seconds": 60.0, "licence_status": "suspended"}


def test_an_event_field_the_services_never_send_is_refused() -> None:
    with pytest.raises(ValidationError):
        testing.event("order_decided", points=3)
    with pytest.raises(ValueError, match="unknown event 'order_paid'"):
        testing.event("order_paid")


def test_a_refused_plugin_fails_with_the_hosts_one_line_reason() -> None:
    FromTheFuture.manifest = Manifest(name="future", version="1.0", feature="future", api_version=3)
    with pytest.raises(AssertionError, match="targets plugin API 3; this kit offers 1, 2"):
        testing.load(FromTheFuture)
    assert "needs feature 'recorder'" in testing.refusal(Recorder, features=["storefront"])


def test_shop_seeds_a_local_catalog_without_an_agent(tmp_path) -> None:
    engine = testing.shop(tmp_path, products=[{"sku": "A-1", "price_cents": 500}, testing.PRODUCT])
    with engine.connect() as connection:
        rows = connection.execute(select(catalog_items.c.sku, catalog_items.c.price_cents, catalog_items.c.status)).all()
    assert sorted(rows) == [("A-1", 500, "active"), ("GAME-100", 1999, "active")]
