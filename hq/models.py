"""HQ's tables (SQLAlchemy 2); schema changes go through hq/migrations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, text, true)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hq.amounts import charge_cents


class Base(DeclarativeBase):
    pass


_BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class Meta(Base):
    """Small named values: the database epoch, how far the catalog log was pruned."""

    __tablename__ = "hq_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class Site(Base):
    """A licensed sub-site: its licence state, command sequence and last heartbeat."""

    __tablename__ = "sites"
    __table_args__ = (  # the fleet page's filters, sorts and prefix search (hq.fleet_query)
        Index("ix_sites_status", "status", "id"),
        Index("ix_sites_version", "version", "id"),
        Index("ix_sites_ring", "ring", "id"),
        Index("ix_sites_heartbeat", "last_heartbeat_at", "id"),
        Index("ix_sites_expires", "licence_expires_at", "id"),
        Index("ix_sites_id_prefix", "id", postgresql_ops={"id": "varchar_pattern_ops"}),
        Index("ix_sites_domain", "domain", postgresql_ops={"domain": "varchar_pattern_ops"}),
        Index("ix_sites_licensee", "licensee", postgresql_ops={"licensee": "varchar_pattern_ops"}),
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|suspended|revoked
    status_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # a timed suspension ends by itself at this moment (hq.sanctions); None: until resumed
    suspended_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, index=True)
    current_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    command_seq: Mapped[int] = mapped_column(Integer, default=0)
    applied_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    counters: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    registry_username: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # the period of its statements (weekly | monthly) unless the operator issuing one says otherwise
    settlement_cadence: Mapped[str] = mapped_column(String(8), default="monthly", server_default="monthly")
    registry_password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    # who runs it and where, for the fleet page's search (given at issue; None for sites issued before 0014)
    licensee: Mapped[str | None] = mapped_column(String(100), nullable=True)
    domain: Mapped[str | None] = mapped_column(String(253), nullable=True)
    # the rollout ring an operator put it in (0 = canary); None: in no ring yet
    ring: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the current licence's expiry, kept by triggers (migration 0037; never written here): the page's expiry
    # sort and active/expired filters walk an index of `sites` alone instead of joining every licence
    licence_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # what the site's host service last told HQ (hq.rollouts.host_settings): its maintenance window
    # ("02:00-05:00 Asia/Shanghai"; None: any time) and whether the licensee lets HQ's rollouts upgrade it
    upgrade_window: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auto_upgrade: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), index=True)


# The fleet page's descending sorts put sites without a value last (`DESC NULLS LAST`, hq.fleet_query); on
# PostgreSQL a backward scan of an ascending index gives `DESC NULLS FIRST`, so without these each such sort
# sorted every site (25-60 ms at 10,000). SQLite's DESC already puts NULLs last: its ascending ones serve.
DESC_SORTS = {"ix_sites_status_desc": Site.status, "ix_sites_version_desc": Site.version,
              "ix_sites_ring_desc": Site.ring, "ix_sites_heartbeat_desc": Site.last_heartbeat_at,
              "ix_sites_expires_desc": Site.licence_expires_at}
POSTGRES_ONLY_INDEXES = frozenset(DESC_SORTS)
for _name, _column in DESC_SORTS.items():
    Index(_name, _column.desc().nulls_last(), Site.id.desc()).ddl_if(dialect="postgresql")


class SiteVersion(Base):
    """Each kit version a site reported, from the heartbeat that first carried it (a trigger, migration 0014)."""

    __tablename__ = "site_versions"
    __table_args__ = (Index("ix_site_versions_site", "site_id", "id"),)
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(63))
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Licence(Base):
    """One signed licence token (a site has a new one after each upgrade or renewal)."""

    __tablename__ = "licences"
    __table_args__ = (Index("ix_licences_tier", "tier"), Index("ix_licences_expires", "expires_at"))
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    tier: Mapped[str] = mapped_column(String(32))
    features: Mapped[list[str]] = mapped_column(JSON)
    categories: Mapped[list[str]] = mapped_column(JSON)
    regions: Mapped[list[str]] = mapped_column(JSON)
    revenue_share_bps: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    token_sha256: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    """Who changed what and when: every licence, catalog, review and operator change."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    operator: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class RegisteredFeature(Base):
    """A licence feature beyond the tiers' own, registered by an HQ operator for a third party's plugin."""

    __tablename__ = "licence_features"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    description: Mapped[str] = mapped_column(String(200))
    vendor: Mapped[str] = mapped_column(String(80))  # who ships the plugin that needs it
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Operator(Base):
    """An HQ operator; only the SHA-256 of the bearer token is kept."""

    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OperatorSession(Base):
    """A fleet-page login: only the SHA-256 of the cookie is kept, so deleting the row ends it at once."""

    __tablename__ = "operator_sessions"
    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(Integer, ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class CatalogItem(Base):
    """A SKU; `version` is the catalog change sequence of its latest change."""

    __tablename__ = "catalog_items"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32), index=True)
    face_value_cents: Mapped[int] = mapped_column(BigInteger)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    stock_kind: Mapped[str] = mapped_column(String(16))  # card_key|direct_topup
    account_pattern: Mapped[str | None] = mapped_column(String(200), nullable=True)
    min_qty: Mapped[int] = mapped_column(Integer, default=1)
    max_qty: Mapped[int] = mapped_column(Integer, default=10)
    status: Mapped[str] = mapped_column(String(16), default="active")
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CatalogChange(Base):
    """The catalog change log; its id is the version sequence cursors count in."""

    __tablename__ = "catalog_changes"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # upsert|delete|stock
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class CardKey(Base):
    """One card key; the secret is AES-GCM encrypted with the HQ vault key."""

    __tablename__ = "card_keys"
    __table_args__ = (
        UniqueConstraint("sku", "serial", name="uq_card_keys_sku_serial"),
        Index("ix_card_keys_alloc", "sku", "status", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(ForeignKey("catalog_items.sku"))
    serial: Mapped[str] = mapped_column(String(128))
    secret_enc: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="available")  # available|reserved|sold
    order_pk: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True, index=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sold_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Order(Base):
    """An order a site forwarded, with HQ's decision; unique per (site, order_id)."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("site_id", "order_id", name="uq_orders_site_order"),
        Index("ix_orders_account", "buyer_account", "received_at"),
        Index("ix_orders_contact", "buyer_contact", "received_at"),
        Index("ix_orders_ip", "buyer_ip", "received_at"),
        Index("ix_orders_site_time", "site_id", "received_at"),
        Index("ix_orders_status", "status"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    hq_order_id: Mapped[str] = mapped_column(String(40), unique=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    order_id: Mapped[str] = mapped_column(String(64))
    request_sha256: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the site's discounted total, if any
    hq_price_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    buyer_account: Mapped[str | None] = mapped_column(String(128), nullable=True)
    buyer_contact: Mapped[str] = mapped_column(String(128))
    buyer_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    buyer_region: Mapped[str | None] = mapped_column(String(16), nullable=True)
    site_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str] = mapped_column(String(16))  # approve|review|reject
    status: Mapped[str] = mapped_column(String(16))  # delivered|review|rejected|pending_payment|expired|refunded
    reasons: Mapped[list[str]] = mapped_column(JSON)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def charge_cents(self) -> int:
        """What the buyer pays (the site's discount taken off): the payment's amount and the ledger's gross."""
        return charge_cents(self.unit_price_cents, self.quantity, self.total_cents)


class SiteDay(Base):
    """A site's orders and their amount per UTC day, kept by a trigger on `orders` (migration 0006).

    The site's daily risk limits read one row here instead of counting the
    day's orders, which grows with the table. Every insert into `orders`, by
    any path, adds to it in the same transaction; orders are never deleted.
    """

    __tablename__ = "site_days"
    site_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    orders: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)


class IdempotencyKey(Base):
    """A site's Idempotency-Key: the body hash and, once done, the orders it produced."""

    __tablename__ = "idempotency_keys"
    site_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_flight|done
    hq_order_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Command(Base):
    """A command for a site; signed afresh on each delivery, done once acknowledged."""

    __tablename__ = "commands"
    __table_args__ = (UniqueConstraint("site_id", "seq", name="uq_commands_site_seq"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)



class Rollout(Base):
    """A kit version rolled out ring by ring (hq.rollouts): the ring it is at, and why it stopped if it did."""

    __tablename__ = "rollouts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[str] = mapped_column(String(128))
    rings: Mapped[list[int]] = mapped_column(JSON)  # in the order they go, canary first
    soak_seconds: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)  # running | halted | done | rolled_back
    ring_index: Mapped[int] = mapped_column(Integer, default=0)  # position in `rings` of the ring under way
    ring_done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RolloutSite(Base):
    """One site of a rollout: its ring, the upgrade command it was sent, and what its host reported."""

    __tablename__ = "rollout_sites"
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    ring: Mapped[int] = mapped_column(Integer)
    # waiting | sent | scheduled (its host waits for its maintenance window) | upgraded | failed | opted_out
    state: Mapped[str] = mapped_column(String(16))
    command_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    detail: Mapped[str | None] = mapped_column(String(300), nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    previous_version: Mapped[str | None] = mapped_column(String(128), nullable=True)  # what it ran before (host's word)
    # rolling the rollout back (hq.rollouts.rollback): None | sent | scheduled | done | failed | opted_out
    rollback_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    rollback_command_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    rollback_detail: Mapped[str | None] = mapped_column(String(300), nullable=True)


class LedgerAccount(Base):
    """A ledger account: one per site (`site:<id>`, what HQ owes it) and HQ's own (`hq:…`)."""

    __tablename__ = "ledger_accounts"
    code: Mapped[str] = mapped_column(String(80), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LedgerEntry(Base):
    """One money event: unique per (kind, source), so a replayed event posts nothing twice; never edited."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("kind", "source", name="uq_ledger_entries_kind_source"),
        Index("ix_ledger_entries_site_time", "site_id", "posted_at", "id"),
    )
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    kind: Mapped[str] = mapped_column(String(16))  # order|refund|base_fee|adjustment|payout|payout_fee|reversal
    source: Mapped[str] = mapped_column(String(120))  # what caused it: an order, a payout, a fee year, …
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), nullable=True)
    operator: Mapped[str | None] = mapped_column(String(64), nullable=True)
    memo: Mapped[str | None] = mapped_column(String(500), nullable=True)


class LedgerLine(Base):
    """One side of an entry: debit positive, credit negative; an entry's lines sum to zero."""

    __tablename__ = "ledger_lines"
    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), index=True)
    account: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.code"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # gross|hq_cost|hq_share|base_fee|adjustment|payout|payout_fee
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class SettlementRate(Base):
    """A rate in force from `effective_from` (a day, UTC) until a later row of the same key replaces it."""

    __tablename__ = "settlement_rates"
    __table_args__ = (Index("ix_settlement_rates_key", "kind", "tier", "category", "effective_from"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # share_bps|base_fee|min_payout|payout_fee
    tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    value: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))


class Statement(Base):
    """An issued statement: its figures and the SHA-256 of its CSV; never changed, only answered."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("site_id", "period_start", "period_end", name="uq_statements_period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    cadence: Mapped[str] = mapped_column(String(8))  # weekly|monthly
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # exclusive
    totals: Mapped[dict[str, Any]] = mapped_column(JSON)
    csv_sha256: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issued_by: Mapped[str] = mapped_column(String(64))
    response: Mapped[str | None] = mapped_column(String(16), nullable=True)  # confirmed|disputed|resolved
    comment: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class Payout(Base):
    """A withdrawal the site asked for; posted to the ledger when HQ approves it with a transfer reference."""

    __tablename__ = "payouts"
    __table_args__ = (UniqueConstraint("site_id", "request_id", name="uq_payouts_site_request"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    fee_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # requested|approved|rejected
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    transfer_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


class FleetAlert(Base):
    """A problem HQ sees at a site (silent, database unhealthy, sync stale, outbox backlog).

    At most one open (`firing`) alert per site and kind; a resolved one stays as history.
    `notified_at` / `resolved_notified_at` record that operators were told, so each
    change is sent once even with several HQ workers evaluating.
    """

    __tablename__ = "fleet_alerts"
    __table_args__ = (
        Index("uq_fleet_alerts_open", "site_id", "kind", unique=True,
              sqlite_where=text("state = 'firing'"), postgresql_where=text("state = 'firing'")),
        Index("ix_fleet_alerts_opened", "opened_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # firing|resolved
    severity: Mapped[str] = mapped_column(String(16))  # warning|critical
    summary: Mapped[str] = mapped_column(String(300))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SupportBundle(Base):
    """A support bundle HQ asked a site for (a signed `support_bundle` command) and what came back.

    The archive itself is a file in `<hq dir>/support-bundles/` (0600); the site redacted it
    before sending (kitcore.redact).
    """

    __tablename__ = "support_bundles"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(63), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PaymentGateway(Base):
    """A payment gateway HQ takes money through; its credentials sealed with the HQ vault (never sent to sites)."""

    __tablename__ = "payment_gateways"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    config_enc: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(64))


class Payment(Base):
    """The payment of one approved order at a gateway; `out_trade_no` is derived from (site, order id)."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_due", "status", "expires_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    order_pk: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    out_trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    gateway: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # pending|paid|held|expired|refunding|refunded
    pay_url: Mapped[str] = mapped_column(Text)
    qr_content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PaymentNotice(Base):
    """Every verified gateway notification, and what it did; one not yet matched waits here for its order."""

    __tablename__ = "payment_notices"
    __table_args__ = (Index("ix_payment_notices_waiting", "out_trade_no", "outcome"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(32))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    trade_no: Mapped[str] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))  # applied|duplicate|held|waiting
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PaymentReconciliation(Base):
    """One gateway's books for one UTC day compared with HQ's payments (hq.payments.reconcile); a rerun replaces it."""

    __tablename__ = "payment_reconciliations"
    __table_args__ = (UniqueConstraint("gateway", "day", name="uq_payment_reconciliations_day"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)
    ran_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ran_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # matched|differences|failed
    gateway_paid: Mapped[int] = mapped_column(Integer)  # payments paid that day in the gateway's books
    gateway_paid_cents: Mapped[int] = mapped_column(BigInteger)
    hq_paid: Mapped[int] = mapped_column(Integer)  # payments HQ saw paid that day
    hq_paid_cents: Mapped[int] = mapped_column(BigInteger)
    differences: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class StockLevel(Base):
    """A card-key SKU's low-stock threshold and the stock state HQ last saw (hq.stock).

    `threshold` NULL: the default (`hq_meta` key `low_stock_default`). `notified_state` is the
    state operators were last told about, claimed by a conditional update, so each change is
    sent once with several HQ workers.
    """

    __tablename__ = "stock_levels"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str | None] = mapped_column(String(16), nullable=True)  # in_stock|low|sold_out
    notified_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RestockRequest(Base):
    """A buyer asked to be told when a sold-out SKU is back: the address encrypted (hq.vault), sent once.

    `email_index` is a keyed hash of the normalised address (one open request per SKU and address,
    no plain address stored); the unsubscribe link's secret is a keyed hash of the id.
    """

    __tablename__ = "restock_requests"
    __table_args__ = (Index("uq_restock_open", "sku", "email_index", unique=True,
                            sqlite_where=text("notified_at IS NULL AND unsubscribed_at IS NULL"),
                            postgresql_where=text("notified_at IS NULL AND unsubscribed_at IS NULL")),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64), index=True)
    email_enc: Mapped[str] = mapped_column(Text)
    email_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Complaint(Base):
    """A buyer's complaint about an order, filed on the shop's order page (with the order's secret) and
    passed on by the agent (hq.complaints). No buyer contact: the order id and the buyer's words only.
    `(site_id, complaint_id)` is the site's own id, so a resend is the same row; one complaint per order."""

    __tablename__ = "complaints"
    __table_args__ = (UniqueConstraint("site_id", "complaint_id", name="uq_complaints_site_id"),
                      UniqueConstraint("site_id", "order_id", name="uq_complaints_site_order"),
                      Index("ix_complaints_received", "received_at", "site_id"), Index("ix_complaints_status", "status", "id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(64))
    complaint_id: Mapped[str] = mapped_column(String(36))
    order_id: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApplicationPayment(Base):
    """An applicant's base fee through HQ's gateway (hq.payments.application_fee): one payment per application; the
    gateway's verified notification moves the application to `base_fee_paid`."""

    __tablename__ = "application_payments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    out_trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    gateway: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # pending | paid | held (the amount did not fit)
    pay_url: Mapped[str] = mapped_column(Text)
    qr_content: Mapped[str | None] = mapped_column(Text, nullable=True)
    trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class GradeCache(Base):
    """A site's metrics for a month as last computed (hq.grade_cache): reused until stale or invalidated.
    The score and grade are not kept: they follow from these with the configuration of the moment."""

    __tablename__ = "grade_cache"
    __table_args__ = (UniqueConstraint("period", "site_id", name="uq_grade_cache_period_site"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7))
    site_id: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GradingSettings(Base):
    """The grading configuration operators set (hq.grading.GradingConfig as JSON); one row, id 1."""

    __tablename__ = "grading_settings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Application(Base):
    """A prospective partner's application (hq.applications): what they ask for and the stage it is at.

    The contact is kept encrypted (hq.vault, bound to the id) with a keyed hash for the duplicate and
    blocked-contact checks; the applicant's secret only as its SHA-256.
    """

    __tablename__ = "applications"
    __table_args__ = (Index("ix_applications_stage", "stage", "id"), Index("ix_applications_contact", "contact_index"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    applicant_kind: Mapped[str] = mapped_column(String(8))  # company|person
    name: Mapped[str] = mapped_column(String(100))
    contact_enc: Mapped[str] = mapped_column(Text)
    contact_index: Mapped[str] = mapped_column(String(64))
    categories: Mapped[list[str]] = mapped_column(JSON)
    regions: Mapped[list[str]] = mapped_column(JSON)
    tier: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str | None] = mapped_column(String(253), nullable=True)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    # submitted|initial_review|manual_review|contract_signed|base_fee_paid|licence_issued|rejected
    stage: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)  # why it was rejected (empty otherwise)
    site_id: Mapped[str | None] = mapped_column(String(63), nullable=True)  # once the licence is issued
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApplicationMaterial(Base):
    """An uploaded document: stored under HQ's directory by a random name, never served inline or run.

    `replaced_at` set: a newer upload of the same kind (a resubmission) took its place.
    """

    __tablename__ = "application_materials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # identity | a category name
    filename: Mapped[str] = mapped_column(String(120))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_as: Mapped[str] = mapped_column(String(64))
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replaced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApplicationEvent(Base):
    """One change of an application's stage: from, to, who (an operator, `hq` or `applicant`), when and why."""

    __tablename__ = "application_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    from_stage: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_stage: Mapped[str] = mapped_column(String(20))
    why: Mapped[str] = mapped_column(String(1000))
