"""orders.payment: where the buyer pays an order HQ approved (HQ's unified payment)

Revision ID: 0004
Revises: 0003

The agent writes HQ's payment (pay link, QR content, amount, currency, expiry)
with the `pending_payment` decision; the storefront shows it on the order page.
No credentials: only what the buyer opens.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("payment", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("payment")
