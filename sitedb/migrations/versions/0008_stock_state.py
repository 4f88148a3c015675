"""The stock state HQ's low-stock threshold gives each card-key SKU (in_stock, low, sold_out), and buyers'
back-in-stock requests waiting for the agent to pass them to HQ

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
    op.create_table(
        "restock_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("email_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_restock_requests_created_at", "restock_requests", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_restock_requests_created_at", table_name="restock_requests")
    op.drop_table("restock_requests")
    with op.batch_alter_table("catalog_items") as batch:
        batch.drop_column("stock_state")
