"""The fleet page's descending sorts on PostgreSQL: `(column DESC NULLS LAST, id DESC)` indexes
(hq.models.DESC_SORTS). SQLite needs none: its ascending indexes, scanned backwards, give that order.

Revision ID: 0030
Revises: 0019
"""
from alembic import op


revision = '0030'
down_revision = '0020'
branch_labels = None
depends_on = None

INDEXES = (("ix_sites_status_desc", "status"), ("ix_sites_version_desc", "version"),
           ("ix_sites_ring_desc", "ring"), ("ix_sites_heartbeat_desc", "last_heartbeat_at"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column in INDEXES:
        op.execute(f"CREATE INDEX {name} ON sites ({column} DESC NULLS LAST, id DESC)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, _column in INDEXES:
        op.execute(f"DROP INDEX {name}")
