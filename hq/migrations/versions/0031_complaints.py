"""Buyers' complaints about orders, passed on by the sites' agents (hq.complaints); counted in grading.

Revision ID: 0031
Revises: 0037 (rechained after main's 0035 and 0037)
"""
import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0037'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("complaint_id", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "complaint_id", name="uq_complaints_site_id"),
        sa.UniqueConstraint("site_id", "order_id", name="uq_complaints_site_order"),
    )
    op.create_index("ix_complaints_received", "complaints", ["received_at", "site_id"])
    op.create_index("ix_complaints_status", "complaints", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_complaints_status", table_name="complaints")
    op.drop_index("ix_complaints_received", table_name="complaints")
    op.drop_table("complaints")
