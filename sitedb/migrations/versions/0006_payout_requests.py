"""The finance role's payout requests, and HQ's payout terms as the agent last read them

Revision ID: 0006
Revises: 0005

A request waits in `payout_requests` until the agent has taken it to HQ
(an outbox, like statement answers); HQ's decision is copied back into it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("site_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payout_terms", sa.JSON(), nullable=True))
    op.create_table(
        "payout_requests",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        _when("requested_at"),
        sa.Column("send_state", sa.String(length=16), nullable=False),
        sa.Column("send_error", sa.String(length=200), nullable=True),
        sa.Column("send_attempts", sa.Integer(), server_default="0", nullable=False),
        _when("send_next_at", nullable=True),
        sa.Column("hq_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("fee_fen", sa.BigInteger(), nullable=True),
        sa.Column("transfer_ref", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _when("decided_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payout_requests_requested_at", "payout_requests", ["requested_at"])
    op.create_index("ix_payout_requests_send_state", "payout_requests", ["send_state"])


def downgrade() -> None:
    op.drop_index("ix_payout_requests_send_state", table_name="payout_requests")
    op.drop_index("ix_payout_requests_requested_at", table_name="payout_requests")
    op.drop_table("payout_requests")
    with op.batch_alter_table("site_state", schema=None) as batch_op:
        batch_op.drop_column("payout_terms")
