"""What the storefront does around the host, for tests: a checkout context and one order transaction."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any


def checkout_ctx(**overrides: Any) -> dict[str, Any]:
    ctx = {
        "sku": "G-100", "category": "game", "quantity": 2, "unit_price_cents": 10_000,
        "hq_price_cents": 9_000, "currency": "CNY", "fields": {}, "buyer_region": "CN-GD",
        "now": datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc),
    }
    ctx.update(overrides)
    return ctx


def place_order(engine: Any, host: Any, ctx: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """What the storefront does: adjust and write the order in ONE transaction; refused → nothing written."""
    from sqlalchemy.orm import Session

    from sitedb.models import Order

    with Session(engine) as session:
        adjustment = host.adjust_checkout(session, ctx)
        if adjustment["errors"]:
            session.rollback()
            return adjustment, None
        gross = ctx["unit_price_cents"] * ctx["quantity"]
        order_id = uuid.uuid4().hex[:16]
        session.add(Order(
            id=order_id, sku=ctx["sku"], item_name="Card", category=ctx["category"], quantity=ctx["quantity"],
            unit_price_cents=ctx["unit_price_cents"], discount_cents=adjustment["discount_cents"],
            total_cents=gross - adjustment["discount_cents"], hq_price_cents=ctx["hq_price_cents"],
            buyer_sealed="(not read by these tests)", buyer_contact_index="-", password_hash="x",
            extras=adjustment["extras"],
        ))
        session.commit()
        return adjustment, order_id


def error_count(registry: Any, plugin: str, hook: str, kind: str) -> float:
    value = registry.get_sample_value("kitagent_plugin_errors_total", {"plugin": plugin, "hook": hook, "kind": kind})
    return value or 0.0


def event(name: str, **overrides: Any) -> dict[str, Any]:
    """A payload of event `name` as the services send it (plugins/events.py), with `overrides`."""
    base: dict[str, dict[str, Any]] = {
        "order_created": {"order_id": "A1001", "sku": "G-100", "category": "game", "quantity": 1,
                          "unit_price_cents": 9_800, "discount_cents": 0, "total_cents": 9_800, "currency": "CNY",
                          "extras": {}},
        "order_decided": {"order_id": "A1001", "sku": "G-100", "category": "game", "quantity": 1, "total_cents": 9_800,
                          "currency": "CNY", "status": "delivered", "decision": "approve",
                          "buyer_contact": "li.si@example.cn"},
        "catalog_item": {"sku": "G-100", "deleted": False, "category": "game", "status": "active",
                         "price_cents": 9_800, "hq_price_cents": 9_000},
        "heartbeat": {"interval_seconds": 30.0, "licence_status": "active"},
    }
    return {**base[name], **overrides}
