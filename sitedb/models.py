"""ORM classes of the shared tables, for the storefront (SQLAlchemy 2 declarative).

Each class maps onto its Core table in `sitedb.tables`, the one definition of the
schema; the annotations below only type the attributes (a test keeps them in step with
the tables). The agent uses the Core tables directly and never imports this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped

from sitedb import tables
from sitedb.tables import utcnow

__all__ = ["AdminUser", "AuditEntry", "Base", "CatalogItem", "HQCommand", "Order", "PriceRule", "SiteState",
           "utcnow"]


class Base(DeclarativeBase):
    metadata = tables.metadata


class CatalogItem(Base):
    """One SKU as synced from HQ, with the selling price this site's rules give it."""

    __table__ = tables.catalog_items

    sku: Mapped[str]
    name: Mapped[str]
    category: Mapped[str]
    face_value_cents: Mapped[int]
    hq_price_cents: Mapped[int]
    price_cents: Mapped[int]
    price_rule_id: Mapped[int | None]
    currency: Mapped[str]
    stock_kind: Mapped[str]
    account_pattern: Mapped[str | None]
    min_qty: Mapped[int]
    max_qty: Mapped[int]
    stock: Mapped[int | None]
    stock_state: Mapped[str | None]
    status: Mapped[str]
    hq_version: Mapped[int]
    content_hash: Mapped[str]
    sync_mark: Mapped[int]
    updated_at: Mapped[datetime]


class PriceRule(Base):
    """A markup the site owner sets; the most specific enabled rule wins (sku > category > all)."""

    __table__ = tables.price_rules

    id: Mapped[int]
    scope: Mapped[str]
    target: Mapped[str | None]
    kind: Mapped[str]
    value: Mapped[int]
    rounding: Mapped[str]
    enabled: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Order(Base):
    """A buyer's order and, at the same time, the agent's outbox row (see `sitedb.tables.orders`)."""

    __table__ = tables.orders

    id: Mapped[str]
    sku: Mapped[str]
    item_name: Mapped[str]
    category: Mapped[str]
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]
    discount_cents: Mapped[int]
    total_cents: Mapped[int]
    hq_price_cents: Mapped[int]
    currency: Mapped[str]
    buyer_sealed: Mapped[str]
    buyer_contact_index: Mapped[str]
    buyer_region: Mapped[str | None]
    password_hash: Mapped[str]
    extras: Mapped[dict[str, Any]]
    status: Mapped[str]
    decision: Mapped[str | None]
    reasons: Mapped[list[str]]
    public_reason: Mapped[str | None]
    hq_order_id: Mapped[str | None]
    delivery_sealed: Mapped[str | None]
    payment: Mapped[dict[str, Any] | None]
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]


class SiteState(Base):
    """One row (id=1): the licence as the agent last verified it, and sync/heartbeat state."""

    __table__ = tables.site_state

    id: Mapped[int]
    site_id: Mapped[str]
    licence_token: Mapped[str | None]
    licence_jti: Mapped[str | None]
    tier: Mapped[str | None]
    features: Mapped[list[str]]
    categories: Mapped[list[str]]
    regions: Mapped[list[str]]
    revenue_share_bps: Mapped[int]
    licence_expires_at: Mapped[int | None]
    licence_status: Mapped[str]
    status_reason: Mapped[str | None]
    applied_seq: Mapped[int]
    catalog_cursor: Mapped[str | None]
    catalog_etag: Mapped[str | None]
    sync_generation: Mapped[int]
    ledger_cursor: Mapped[int]
    payout_terms: Mapped[dict[str, Any] | None]  # HQ's balance, minimum payout and fee (the agent copies them)
    last_sync_at: Mapped[datetime | None]
    last_heartbeat_at: Mapped[datetime | None]
    health: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]

    @property
    def takes_orders(self) -> bool:
        return self.licence_status in tables.TAKES_ORDERS


class HQCommand(Base):
    """A signed HQ command, persisted after verification and before it is applied."""

    __table__ = tables.hq_commands

    id: Mapped[str]
    seq: Mapped[int]
    type: Mapped[str]
    payload: Mapped[dict[str, Any]]
    token: Mapped[str]
    received_at: Mapped[datetime]
    applied_at: Mapped[datetime | None]
    outcome: Mapped[str | None]


class AdminUser(Base):
    """A sub-site staff account: admin, operator or finance."""

    __table__ = tables.admin_users

    id: Mapped[int]
    username: Mapped[str]
    role: Mapped[str]
    password_hash: Mapped[str]
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Every data change, who made it and when (the operation log)."""

    __table__ = tables.audit_log

    id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    detail: Mapped[dict[str, Any]]
