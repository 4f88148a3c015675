"""The licence's regions in site_state (the agent copies them from the licence), for checkout to enforce

Revision ID: 0009
Revises: 0008

Empty until the agent stores the licence again (it does at every start): no
region limit meanwhile, as before this column.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("site_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("regions", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("site_state", schema=None) as batch_op:
        batch_op.drop_column("regions")
