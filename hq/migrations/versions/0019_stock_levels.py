"""Stock warnings: per-SKU low-stock thresholds and state (hq.stock), buyers' back-in-stock requests;
the grading configuration (hq.grading).

Revision ID: 0019
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0016'
branch_labels = None
depends_on = None

OPEN = "notified_at IS NULL AND unsubscribed_at IS NULL"


def upgrade() -> None:
    op.create_table(
        'stock_levels',
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=True),
        sa.Column('notified_state', sa.String(length=16), nullable=True),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('sku'),
    )
    op.create_table(
        'restock_requests',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('email_enc', sa.Text(), nullable=False),
        sa.Column('email_index', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('unsubscribed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('restock_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_restock_requests_sku'), ['sku'], unique=False)
        batch_op.create_index('uq_restock_open', ['sku', 'email_index'], unique=True,
                              sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


    op.create_table(
        'grading_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('grading_settings')
    with op.batch_alter_table('restock_requests', schema=None) as batch_op:
        batch_op.drop_index('uq_restock_open')
        batch_op.drop_index(batch_op.f('ix_restock_requests_sku'))
    op.drop_table('restock_requests')
    op.drop_table('stock_levels')
