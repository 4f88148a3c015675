"""Tables shared by the storefront and the agent (SQLAlchemy 2 declarative)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class CatalogItem(Base):
    """One SKU as synced from HQ, with the selling price this site's rules give it."""

    __tablename__ = "catalog_items"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32), index=True)
    face_value_cents: Mapped[int] = mapped_column(BigInteger)
    hq_price_cents: Mapped[int] = mapped_column(BigInteger)
    price_cents: Mapped[int] = mapped_column(BigInteger)  # selling price, never below hq_price_cents
    price_rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    stock_kind: Mapped[str] = mapped_column(String(16))  # card_key | direct_topup
    account_pattern: Mapped[str | None] = mapped_column(String(200), nullable=True)
    min_qty: Mapped[int] = mapped_column(Integer, default=1)
    max_qty: Mapped[int] = mapped_column(Integer, default=10)
    stock: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | inactive
    hq_version: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))  # of HQ's fields: unchanged items cost no write
    sync_mark: Mapped[int] = mapped_column(BigInteger, default=0)  # full-resync generation (mark and sweep)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class PriceRule(Base):
    """A markup the site owner sets; the most specific enabled rule wins (sku > category > all)."""

    __tablename__ = "price_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # all | category | sku
    target: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # percent (value in basis points) | fixed (value in cents)
    value: Mapped[int] = mapped_column(BigInteger)
    rounding: Mapped[str] = mapped_column(String(16), default="none")  # none | jiao | yuan | yuan_minus_1
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Order(Base):
    """A buyer's order and, at the same time, the agent's outbox row.

    Written by the storefront in the checkout transaction with status
    `pending`; the agent forwards it and writes HQ's decision back.
    Statuses: pending → delivered | review | rejected; review → delivered | rejected.
    """

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public order number
    sku: Mapped[str] = mapped_column(String(64))
    item_name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    discount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    hq_price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    buyer_account: Mapped[str | None] = mapped_column(String(128), nullable=True)
    buyer_contact: Mapped[str] = mapped_column(String(128))
    buyer_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    buyer_region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. coupon applied by a plugin
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    public_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    hq_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    delivery_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)  # card keys, encrypted with the site key
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_orders_outbox", "status", "next_attempt_at"),)


class SiteState(Base):
    """One row (id=1): the licence as the agent last verified it, and sync/heartbeat state."""

    __tablename__ = "site_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    site_id: Mapped[str] = mapped_column(String(64))
    licence_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    licence_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    features: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    revenue_share_bps: Mapped[int] = mapped_column(Integer, default=0)
    licence_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    licence_status: Mapped[str] = mapped_column(String(16), default="active")  # active | grace | suspended | revoked | expired
    status_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    applied_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    catalog_cursor: Mapped[str | None] = mapped_column(String(256), nullable=True)
    catalog_etag: Mapped[str | None] = mapped_column(String(256), nullable=True)
    sync_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def takes_orders(self) -> bool:
        return self.licence_status in ("active", "grace")


class HQCommand(Base):
    """A signed HQ command, persisted after verification and before it is applied."""

    __tablename__ = "hq_commands"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    type: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AdminUser(Base):
    """A sub-site staff account: admin, operator or finance."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | finance
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """Every data change, who made it and when (the operation log)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # agent | hq | admin:<name>
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
