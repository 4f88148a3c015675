"""The coupons plugin's own table, on its own metadata (not part of sitedb's migrations).

Decision: the plugin owns `plugin_coupons` and creates it with
`metadata.create_all(checkfirst=True)` from `prepare_database`, which the admin
command calls before adding a coupon (and callers may call at start through
`host.prepare_database(engine)`). A checkout never runs DDL: with no table there
is no coupon, so a typed code is simply "not valid". A plugin that can be
installed or removed independently of the kit keeps its schema with itself
instead of adding migrations to the shared site database.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Table

metadata = MetaData()

coupons = Table(
    "plugin_coupons",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),  # stored upper-case
    Column("kind", String(8), nullable=False),  # percent | fixed
    Column("value", BigInteger, nullable=False),  # percent: 1..100; fixed: cents off the order
    Column("categories", JSON, nullable=False, default=list),  # [] = every category
    Column("valid_from", DateTime(timezone=True), nullable=True),
    Column("valid_until", DateTime(timezone=True), nullable=True),
    Column("max_uses", Integer, nullable=True),  # None = unlimited
    Column("used_count", Integer, nullable=False, default=0),
    Column("min_total_cents", BigInteger, nullable=False, default=0),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
