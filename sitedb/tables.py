"""The tables the storefront and the agent share, as SQLAlchemy Core: the one definition of the schema.

Core only, so a process that needs no ORM (the agent) never imports `sqlalchemy.orm`
(about 6 MB of resident memory). The storefront's ORM classes in `sitedb.models` map
onto these same `Table` objects; the Alembic migrations compare against `metadata`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Float, ForeignKey, Index, Integer, MetaData, String,
                        Table, Text)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _when(name: str, *, nullable: bool = False, stamped: bool = False, touched: bool = False,
          index: bool = False) -> Column:  # type: ignore[type-arg]
    """A timezone-aware time column; `stamped`: set at insert, `touched`: also at every update."""
    return Column(name, DateTime(timezone=True), nullable=nullable, index=index or None,
                  default=utcnow if stamped or touched else None, onupdate=utcnow if touched else None)


def _outbox(prefix: str, *, nullable: bool) -> tuple[Column, ...]:  # type: ignore[type-arg]
    """What the site sends HQ through the agent: `<prefix>_state` pending | sent | refused, HQ's one-line
    refusal, the attempts so far and when to try again (the agent's back-off)."""
    return (Column(f"{prefix}_state", String(16), nullable=nullable, index=True),
            Column(f"{prefix}_error", String(200), nullable=True),
            Column(f"{prefix}_attempts", Integer, nullable=False, default=0, server_default="0"),
            _when(f"{prefix}_next_at", nullable=True))


metadata = MetaData()

# One SKU as synced from HQ, with the selling price this site's rules give it.
catalog_items = Table(
    "catalog_items", metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("category", String(32), nullable=False, index=True),
    Column("face_value_cents", BigInteger, nullable=False),
    Column("hq_price_cents", BigInteger, nullable=False),
    Column("price_cents", BigInteger, nullable=False),  # selling price, never below hq_price_cents
    Column("price_rule_id", Integer, nullable=True),
    Column("currency", String(3), nullable=False, default="CNY"),
    Column("stock_kind", String(16), nullable=False),  # card_key | direct_topup
    Column("account_pattern", String(200), nullable=True),
    Column("min_qty", Integer, nullable=False, default=1),
    Column("max_qty", Integer, nullable=False, default=10),
    Column("stock", Integer, nullable=True),
    Column("stock_state", String(16), nullable=True),  # in_stock | low | sold_out (HQ's threshold); NULL: top-up
    Column("status", String(16), nullable=False, default="active"),  # active | inactive
    Column("hq_version", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),  # of HQ's fields: unchanged items cost no write
    Column("sync_mark", BigInteger, nullable=False, default=0),  # full-resync generation (mark and sweep)
    _when("updated_at", touched=True),
)

# A buyer's "tell me when it is back" for a sold-out SKU, until the agent has passed it to HQ
# (which mails once); the address is sealed with the site key (sitedb.buyer), bound to the row id.
restock_requests = Table(
    "restock_requests", metadata,
    Column("id", String(36), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("email_sealed", Text, nullable=False),
    _when("created_at", stamped=True, index=True),
)

# A markup the site owner sets; the most specific enabled rule wins (sku > category > all).
# Its fields, their meaning and their allowed values are `sitedb.pricing.Rule`'s; these are their columns.
price_rules = Table(
    "price_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("target", String(64), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("rounding", String(16), nullable=False, default="none"),
    Column("enabled", Boolean, nullable=False, default=True),
    _when("created_at", stamped=True),
    _when("updated_at", touched=True),
)

# A buyer's order and, at the same time, the agent's outbox row: written `pending` by the
# storefront's checkout, forwarded by the agent, which writes HQ's decision back.
# Statuses: pending → delivered | review | rejected; review → delivered | rejected.
orders = Table(
    "orders", metadata,
    Column("id", String(32), primary_key=True),  # public order number
    Column("sku", String(64), nullable=False),
    Column("item_name", String(200), nullable=False),
    Column("category", String(32), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("discount_cents", BigInteger, nullable=False, default=0),
    Column("total_cents", BigInteger, nullable=False),
    Column("hq_price_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False, default="CNY"),
    # contact, account and IP, sealed with the site key (sitedb.buyer); the index finds a contact
    Column("buyer_sealed", Text, nullable=False),
    Column("buyer_contact_index", String(32), nullable=False, index=True),
    Column("buyer_region", String(16), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("extras", JSON, nullable=False, default=dict),  # e.g. coupon applied by a plugin
    Column("status", String(16), nullable=False, default="pending", index=True),
    Column("decision", String(16), nullable=True),
    Column("reasons", JSON, nullable=False, default=list),
    Column("public_reason", String(200), nullable=True),
    Column("hq_order_id", String(64), nullable=True),
    Column("delivery_sealed", Text, nullable=True),  # card keys, encrypted with the site key
    # where the buyer pays an HQ-approved order (HQ's gateway: pay_url, qr, amount_cents, currency, expires_at)
    Column("payment", JSON, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    _when("next_attempt_at", stamped=True),
    Column("last_error", String(200), nullable=True),
    _when("created_at", stamped=True, index=True),
    _when("updated_at", touched=True),
    _when("decided_at", nullable=True),
    Index("ix_orders_outbox", "status", "next_attempt_at"),
)

# One row (id=1): the licence as the agent last verified it, and sync/heartbeat state.
TAKES_ORDERS = ("active", "grace")  # the licence_status values in which the storefront takes orders
site_state = Table(
    "site_state", metadata,
    Column("id", Integer, primary_key=True, default=1),
    Column("site_id", String(64), nullable=False),
    Column("licence_token", Text, nullable=True),
    Column("licence_jti", String(64), nullable=True),
    Column("tier", String(32), nullable=True),
    Column("features", JSON, nullable=False, default=list),
    Column("categories", JSON, nullable=False, default=list),
    Column("regions", JSON, nullable=False, default=list, server_default="[]"),  # the licence's; [] = no limit
    Column("revenue_share_bps", Integer, nullable=False, default=0),
    Column("licence_expires_at", BigInteger, nullable=True),
    # active | grace | suspended | revoked | expired
    Column("licence_status", String(16), nullable=False, default="active"),
    Column("status_reason", String(300), nullable=True),
    Column("applied_seq", BigInteger, nullable=False, default=0),
    Column("catalog_cursor", String(256), nullable=True),
    Column("catalog_etag", String(256), nullable=True),
    Column("sync_generation", BigInteger, nullable=False, default=0),
    Column("ledger_cursor", BigInteger, nullable=False, default=0, server_default="0"),  # HQ's entry feed
    Column("payout_terms", JSON, nullable=True),  # HQ's last word on the balance, minimum payout and fee
    _when("last_sync_at", nullable=True),
    _when("last_heartbeat_at", nullable=True),
    Column("health", JSON, nullable=False, default=dict),
    _when("updated_at", touched=True),
)

# A signed HQ command, persisted after verification and before it is applied.
hq_commands = Table(
    "hq_commands", metadata,
    Column("id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("payload", JSON, nullable=False, default=dict),
    Column("token", Text, nullable=False),
    _when("received_at", stamped=True),
    _when("applied_at", nullable=True),
    Column("outcome", String(200), nullable=True),
)

# A sub-site staff account: admin, operator or finance.
admin_users = Table(
    "admin_users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin | operator | finance
    Column("password_hash", String(255), nullable=False),
    _when("created_at", stamped=True),
    _when("disabled_at", nullable=True),  # a disabled account cannot log in; its sessions were ended
)

# Staff logins, kept server-side so that logout, disable and a password change end them at once.
# Only the SHA-256 of the cookie is stored.
admin_sessions = Table(
    "admin_sessions", metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False, index=True),
    _when("created_at", stamped=True),
    _when("expires_at", index=True),
)

# Every data change, who made it and when (the operation log).
audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _when("at", stamped=True, index=True),
    Column("actor", String(64), nullable=False),  # agent | hq | admin:<name>
    Column("action", String(64), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
)

# Reseller API keys (licence feature api-access): the secret's SHA-256 only; a rotated key keeps its id.
api_keys = Table(
    "api_keys", metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("scopes", JSON, nullable=False, default=list),
    _when("created_at", stamped=True),
    _when("revoked_at", nullable=True),
    _when("last_used_at", nullable=True),
)

# HQ's statements of this site, as the agent last read them, and the finance role's answer to each.
# HQ's fields are HQ's (the agent overwrites them); the answer is the site's until HQ has it:
# answer_state pending (the agent's outbox) → sent, or refused (HQ said no, answer_error says why).
STATEMENT_TOTALS = ("opening", "orders_gross", "refunds_gross", "hq_cost", "hq_share", "fees", "adjustments",
                    "payouts", "closing")
settlement_statements = Table(
    "settlement_statements", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # HQ's statement id
    Column("cadence", String(8), nullable=False),  # weekly | monthly
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),  # exclusive
    Column("totals", JSON, nullable=False),  # fen, STATEMENT_TOTALS, from the site's side
    Column("csv_sha256", String(64), nullable=False),
    _when("issued_at"),
    Column("hq_response", String(16), nullable=True),  # confirmed | disputed | resolved, as HQ holds it
    Column("hq_comment", Text, nullable=True),
    Column("hq_resolution", Text, nullable=True),
    Column("answer", String(16), nullable=True),  # confirmed | disputed: the finance role's, here
    Column("answer_comment", Text, nullable=True),
    Column("answered_by", String(64), nullable=True),
    _when("answered_at", nullable=True),
    *_outbox("answer", nullable=True),  # no answer yet: no state
    _when("synced_at", touched=True),
)

# A copy of HQ's ledger entries of this site (never edited at HQ, so never here): one row per entry
# with the statement CSV's columns, from the site's side. The revenue page, the finance page and
# the exit export read these, so the site shows HQ's own figures.
ENTRY_AMOUNTS = ("gross_fen", "hq_cost_fen", "hq_share_fen", "fees_fen", "adjustment_fen", "payout_fen", "net_fen")
settlement_entries = Table(
    "settlement_entries", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # HQ's entry id
    _when("posted_at", index=True),
    Column("kind", String(16), nullable=False),
    Column("source", String(120), nullable=False, index=True),  # an order or refund: HQ's order id
    Column("reference", String(500), nullable=True),  # the site's order id for an order; a reason; a transfer ref
    *(Column(name, BigInteger, nullable=False) for name in ENTRY_AMOUNTS),
)

# The finance role's payout requests. `id` is generated here and is HQ's request_id, so a resend never
# makes a second payout. send_state: pending (the agent's outbox) → sent, or refused (HQ said no,
# send_error says why). HQ's fields (hq_id, status, fee, transfer_ref, reason) are HQ's: the agent copies them.
payout_requests = Table(
    "payout_requests", metadata,
    Column("id", String(64), primary_key=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("requested_by", String(64), nullable=False),
    _when("requested_at", index=True),
    *_outbox("send", nullable=False),
    Column("hq_id", BigInteger, nullable=True),
    Column("status", String(16), nullable=True),  # requested | approved | rejected, as HQ holds it
    Column("fee_fen", BigInteger, nullable=True),
    Column("transfer_ref", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    _when("decided_at", nullable=True),
)

# HQ's grade of this site (one row, id 1), copied by the agent (agent.grade) so the admin's grade page
# reads it without calling HQ: the period, grade and score, and HQ's whole answer (trend, each metric
# beside its scale, the grade lines, what would raise it) as `detail`.
site_grade = Table(
    "site_grade", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("period", String(7), nullable=False),
    Column("grade", String(1), nullable=False),
    Column("score", Float, nullable=False),
    Column("detail", JSON, nullable=False),
    _when("fetched_at"),
)

# A buyer's complaint about an order, filed on the order page with the order's secret (storefront.complaints):
# one per order. It waits here (send_state pending, the agent's outbox) until HQ has it (sent), or HQ refused it
# for good (refused, send_error says why). No contact: the order id and the buyer's words only.
complaints = Table(
    "complaints", metadata,
    Column("id", String(36), primary_key=True),  # the site's id, HQ's complaint_id: a resend is the same complaint
    Column("order_id", String(32), ForeignKey("orders.id"), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    _when("filed_at", stamped=True, index=True),
    *_outbox("send", nullable=False),
    Column("hq_id", BigInteger, nullable=True),
    Column("hq_status", String(16), nullable=True),  # open | resolved, as HQ answered
)
