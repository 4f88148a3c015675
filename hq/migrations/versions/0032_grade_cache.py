"""Computed grading metrics per site and month, reused until stale or invalidated (hq.grade_cache).

Revision ID: 0032
Revises: 0031
"""
import sqlalchemy as sa
from alembic import op

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grade_cache",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("period", "site_id", name="uq_grade_cache_period_site"),
    )


def downgrade() -> None:
    op.drop_table("grade_cache")
