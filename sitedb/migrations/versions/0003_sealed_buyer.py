"""seal buyer contact, account and IP with the site key

Revision ID: 0003
Revises: 0002

Orders kept the buyer's contact, account and IP in clear. They move into one sealed box
per order (`buyer_sealed`, see sitedb.buyer) plus a keyed index of the contact. Existing
orders are sealed with the key in KIT_SITE_KEY_FILE (the storefront and the agent both
have it); with orders present and no key the migration stops and says so. The downgrade
opens the boxes again with the same key.
"""
from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_orders = sa.table("orders", sa.column("id", sa.String), sa.column("buyer_contact", sa.String),
                   sa.column("buyer_account", sa.String), sa.column("buyer_ip", sa.String),
                   sa.column("buyer_sealed", sa.Text), sa.column("buyer_contact_index", sa.String))


def _box():  # -> sitedb.buyer.BuyerBox
    from sitedb.buyer import BuyerBox
    from sitedb.sealing import load_site_key

    path = os.environ.get("KIT_SITE_KEY_FILE")
    if not path:
        raise RuntimeError("orders hold buyer data to (un)seal: set KIT_SITE_KEY_FILE to the site key")
    return BuyerBox(load_site_key(path))


def upgrade() -> None:
    from sitedb.buyer import Buyer

    conn = op.get_bind()
    rows = conn.execute(sa.select(_orders.c.id, _orders.c.buyer_contact, _orders.c.buyer_account,
                                  _orders.c.buyer_ip)).all()
    box = _box() if rows else None  # before any change: SQLite does not roll DDL back
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("buyer_sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("buyer_contact_index", sa.String(length=32), nullable=True))
    if box is not None:
        conn.execute(sa.update(_orders).where(_orders.c.id == sa.bindparam("b_id")).values(
            buyer_sealed=sa.bindparam("sealed"), buyer_contact_index=sa.bindparam("index")),
            [{"b_id": r.id, "sealed": box.seal(r.id, Buyer(r.buyer_contact, r.buyer_account, r.buyer_ip)),
              "index": box.contact_index(r.buyer_contact)} for r in rows])
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("buyer_sealed", existing_type=sa.Text(), nullable=False)
        batch.alter_column("buyer_contact_index", existing_type=sa.String(length=32), nullable=False)
        batch.create_index(batch.f("ix_orders_buyer_contact_index"), ["buyer_contact_index"], unique=False)
        batch.drop_column("buyer_contact")
        batch.drop_column("buyer_account")
        batch.drop_column("buyer_ip")


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_orders.c.id, _orders.c.buyer_sealed)).all()
    box = _box() if rows else None
    opened = [(r.id, box.open(r.id, r.buyer_sealed)) for r in rows] if box else []
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("buyer_account", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("buyer_contact", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("buyer_ip", sa.String(length=64), nullable=True))
    if opened:
        conn.execute(sa.update(_orders).where(_orders.c.id == sa.bindparam("b_id")).values(
            buyer_contact=sa.bindparam("contact"), buyer_account=sa.bindparam("account"), buyer_ip=sa.bindparam("ip")),
            [{"b_id": order_id, "contact": b.contact, "account": b.account, "ip": b.ip} for order_id, b in opened])
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("buyer_contact", existing_type=sa.String(length=128), nullable=False)
        batch.drop_index(batch.f("ix_orders_buyer_contact_index"))
        batch.drop_column("buyer_contact_index")
        batch.drop_column("buyer_sealed")
