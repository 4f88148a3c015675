"""Buyers' complaints about orders, waiting for the agent to pass them on to HQ

Revision ID: 0012
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_state", sa.String(length=16), nullable=False),
        sa.Column("send_error", sa.String(length=200), nullable=True),
        sa.Column("send_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("send_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hq_id", sa.BigInteger(), nullable=True),
        sa.Column("hq_status", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    op.create_index("ix_complaints_filed_at", "complaints", ["filed_at"])
    op.create_index("ix_complaints_send_state", "complaints", ["send_state"])


def downgrade() -> None:
    op.drop_index("ix_complaints_send_state", table_name="complaints")
    op.drop_index("ix_complaints_filed_at", table_name="complaints")
    op.drop_table("complaints")
