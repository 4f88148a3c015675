"""The daily reconciliation of each gateway's books against HQ's payments.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'payment_reconciliations',
        sa.Column('id', BIG, autoincrement=True, nullable=False),
        sa.Column('gateway', sa.String(length=32), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('ran_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ran_by', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('gateway_paid', sa.Integer(), nullable=False),
        sa.Column('gateway_paid_cents', sa.BigInteger(), nullable=False),
        sa.Column('hq_paid', sa.Integer(), nullable=False),
        sa.Column('hq_paid_cents', sa.BigInteger(), nullable=False),
        sa.Column('differences', sa.JSON(), nullable=False),
        sa.Column('error', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('gateway', 'day', name='uq_payment_reconciliations_day'),
    )


def downgrade() -> None:
    op.drop_table('payment_reconciliations')
