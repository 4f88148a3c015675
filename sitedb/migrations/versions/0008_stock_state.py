"""The stock state HQ's low-stock threshold gives each card-key SKU (in_stock, low, sold_out)

Revision ID: 0008
Revises: 0006

NULL for direct top-ups and for rows synced before HQ sent it (the shop then goes by `stock` alone).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_items") as batch:
        batch.add_column(sa.Column("stock_state", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalog_items") as batch:
        batch.drop_column("stock_state")
