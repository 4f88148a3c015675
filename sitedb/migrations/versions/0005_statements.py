"""HQ's statements and ledger entries of the site, and the finance role's answers

Revision ID: 0005
Revises: 0004

The agent copies the site's statements and ledger entries from HQ; the
finance role's confirmation or dispute waits in `settlement_statements`
until the agent has taken it to HQ (an outbox, like orders).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

AMOUNTS = ("gross_fen", "hq_cost_fen", "hq_share_fen", "fees_fen", "adjustment_fen", "payout_fen", "net_fen")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("site_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ledger_cursor", sa.BigInteger(), server_default="0", nullable=False))
    op.create_table(
        "settlement_statements",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cadence", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("csv_sha256", sa.String(length=64), nullable=False),
        _when("issued_at"),
        sa.Column("hq_response", sa.String(length=16), nullable=True),
        sa.Column("hq_comment", sa.Text(), nullable=True),
        sa.Column("hq_resolution", sa.Text(), nullable=True),
        sa.Column("answer", sa.String(length=16), nullable=True),
        sa.Column("answer_comment", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=True),
        _when("answered_at", nullable=True),
        sa.Column("answer_state", sa.String(length=16), nullable=True),
        sa.Column("answer_error", sa.String(length=200), nullable=True),
        sa.Column("answer_attempts", sa.Integer(), server_default="0", nullable=False),
        _when("answer_next_at", nullable=True),
        _when("synced_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_settlement_statements_answer_state", "settlement_statements", ["answer_state"])
    op.create_table(
        "settlement_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        _when("posted_at"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("reference", sa.String(length=500), nullable=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in AMOUNTS),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_settlement_entries_posted_at", "settlement_entries", ["posted_at"])
    op.create_index("ix_settlement_entries_source", "settlement_entries", ["source"])


def downgrade() -> None:
    op.drop_index("ix_settlement_entries_source", table_name="settlement_entries")
    op.drop_index("ix_settlement_entries_posted_at", table_name="settlement_entries")
    op.drop_table("settlement_entries")
    op.drop_index("ix_settlement_statements_answer_state", table_name="settlement_statements")
    op.drop_table("settlement_statements")
    with op.batch_alter_table("site_state", schema=None) as batch_op:
        batch_op.drop_column("ledger_cursor")
