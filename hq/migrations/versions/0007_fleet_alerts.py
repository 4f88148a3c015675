"""Fleet alerts (problems HQ sees at its sites, open and resolved) and support bundles HQ asked sites for.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'fleet_alerts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('site_id', sa.String(length=63), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('severity', sa.String(length=16), nullable=False),
        sa.Column('summary', sa.String(length=300), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_notified_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('fleet_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_alerts_site_id'), ['site_id'], unique=False)
        batch_op.create_index('ix_fleet_alerts_opened', ['opened_at'], unique=False)
        batch_op.create_index('uq_fleet_alerts_open', ['site_id', 'kind'], unique=True,
                              sqlite_where=sa.text("state = 'firing'"),
                              postgresql_where=sa.text("state = 'firing'"))

    op.create_table(
        'support_bundles',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('site_id', sa.String(length=63), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('size_bytes', sa.Integer(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('support_bundles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_support_bundles_site_id'), ['site_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('support_bundles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_support_bundles_site_id'))
    op.drop_table('support_bundles')
    with op.batch_alter_table('fleet_alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_fleet_alerts_open')
        batch_op.drop_index('ix_fleet_alerts_opened')
        batch_op.drop_index(batch_op.f('ix_fleet_alerts_site_id'))
    op.drop_table('fleet_alerts')
