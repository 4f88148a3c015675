"""The events plugins receive, one typed payload each.

The services build every payload through these models, so a payload cannot
drift from what docs/plugins.md says: the reference there is generated from
this module (`python -m plugins.events`), and a test fails when the two differ.
A plugin's hook still receives a plain dict (`Model.model_dump()`), so plugins
written against dicts keep working.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def payload(self) -> dict[str, Any]:
        """What the hook receives."""
        return self.model_dump()


class _Order(Event):
    """What both order events say of the order."""

    order_id: str = Field(description="the site's order id (also the idempotency key towards HQ)")
    sku: str = Field(description="the item bought")
    category: str = Field(description="its category, e.g. game")
    quantity: int = Field(description="how many")
    total_cents: int = Field(description="what the buyer owes, in fen")
    currency: str = Field(description="ISO 4217 code, e.g. CNY")


class OrderCreated(_Order):
    """`order_created(payload)`, in the storefront, after the buyer's order committed (before HQ decides)."""

    unit_price_cents: int = Field(description="the site's unit price, in fen")
    discount_cents: int = Field(description="what plugins took off the whole order, in fen")
    extras: dict[str, Any] = Field(
        description="what each plugin's adjust_checkout returned as extras, keyed by plugin name "
                    "(plus the host's _discounts, _clamped_cents and _failed when they apply)")


class OrderDecided(_Order):
    """`on_order_decided(payload)`, in the agent, once HQ's decision is stored (card keys are never in it)."""

    status: str = Field(description="the order's state after the decision: delivered, rejected, review, "
                                    "pending_payment, expired or refunded")
    decision: Optional[str] = Field(description="HQ's decision: approve, reject or review")
    buyer_contact: Optional[str] = Field(description="the buyer's contact (e-mail or phone), opened with the "
                                                     "site key; null when it cannot be opened")


class CatalogItem(Event):
    """`on_catalog_item(payload)`, in the agent, for each item a catalog sync wrote or deleted."""

    sku: str = Field(description="the item")
    deleted: bool = Field(description="true when HQ withdrew it; then only sku is set")
    category: Optional[str] = Field(default=None, description="its category")
    status: Optional[str] = Field(default=None, description="active or inactive")
    price_cents: Optional[int] = Field(default=None, description="the site's price after its price rules, in fen")
    hq_price_cents: Optional[int] = Field(default=None, description="HQ's price to the site, in fen (the floor)")


class Heartbeat(Event):
    """`on_heartbeat(payload)`, in the agent, after each heartbeat HQ answered."""

    interval_seconds: float = Field(description="the interval HQ asks for until the next heartbeat")
    licence_status: str = Field(description="the licence's state as HQ reports it, e.g. active, suspended, revoked")


EVENTS: dict[str, type[Event]] = {
    "order_created": OrderCreated,
    "order_decided": OrderDecided,
    "catalog_item": CatalogItem,
    "heartbeat": Heartbeat,
}


def reference() -> str:
    """The Markdown reference of every event's payload, as docs/plugins.md carries it."""
    from plugins.contract import EVENT_HOOKS

    lines: list[str] = []
    for name, model in EVENTS.items():
        lines += [f"#### `{EVENT_HOOKS[name]}` — {name}", "", (model.__doc__ or "").strip(), "",
                  "| field | type | meaning |", "|---|---|---|"]
        for field, info in model.model_fields.items():
            lines.append(f"| `{field}` | {_type_name(info.annotation)} | {info.description} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    text = text.replace("typing.", "")
    if str(annotation).startswith("typing.Optional") or "None" in str(annotation):
        inner = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
        return f"{_type_name(inner[0])} or null" if inner else "null"
    return {"dict": "object", "str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(text, text)


if __name__ == "__main__":
    print(reference())
