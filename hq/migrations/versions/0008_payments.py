"""Payments: gateways (sealed credentials), one payment per approved order, verified notifications.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'payment_gateways',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('config_enc', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_table(
        'payments',
        sa.Column('id', BIG, autoincrement=True, nullable=False),
        sa.Column('order_pk', BIG, nullable=False),
        sa.Column('out_trade_no', sa.String(length=64), nullable=False),
        sa.Column('gateway', sa.String(length=32), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('pay_url', sa.Text(), nullable=False),
        sa.Column('qr_content', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('trade_no', sa.String(length=64), nullable=True),
        sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['order_pk'], ['orders.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('order_pk'),
        sa.UniqueConstraint('out_trade_no'),
    )
    op.create_index('ix_payments_due', 'payments', ['status', 'expires_at'], unique=False)
    op.create_table(
        'payment_notices',
        sa.Column('id', BIG, autoincrement=True, nullable=False),
        sa.Column('gateway', sa.String(length=32), nullable=False),
        sa.Column('out_trade_no', sa.String(length=64), nullable=False),
        sa.Column('trade_no', sa.String(length=64), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_payment_notices_waiting', 'payment_notices', ['out_trade_no', 'outcome'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_payment_notices_waiting', table_name='payment_notices')
    op.drop_table('payment_notices')
    op.drop_index('ix_payments_due', table_name='payments')
    op.drop_table('payments')
    op.drop_table('payment_gateways')
