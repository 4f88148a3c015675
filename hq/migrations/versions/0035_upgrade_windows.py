"""Host settings HQ hears from each site's host service (maintenance window, opt-out of automatic upgrades)
and rolling a rollout back (each site's previous version and its rollback command).

Revision ID: 0035
Revises: 0030
"""
from alembic import op
import sqlalchemy as sa


revision = '0035'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ALTER TABLE … ADD COLUMN: a batch on SQLite would copy `sites` and drop its site_versions trigger
    op.add_column('sites', sa.Column('upgrade_window', sa.String(length=64), nullable=True))
    op.add_column('sites', sa.Column('auto_upgrade', sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_index('ix_sites_auto_upgrade', 'sites', ['auto_upgrade'], unique=False)
    op.add_column('rollout_sites', sa.Column('previous_version', sa.String(length=128), nullable=True))
    op.add_column('rollout_sites', sa.Column('rollback_state', sa.String(length=16), nullable=True))
    op.add_column('rollout_sites', sa.Column('rollback_command_id', sa.String(length=36), nullable=True))
    op.add_column('rollout_sites', sa.Column('rollback_detail', sa.String(length=300), nullable=True))
    op.create_index('ix_rollout_sites_rollback_command_id', 'rollout_sites', ['rollback_command_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_rollout_sites_rollback_command_id', table_name='rollout_sites')
    with op.batch_alter_table('rollout_sites') as batch:
        for column in ('rollback_detail', 'rollback_command_id', 'rollback_state', 'previous_version'):
            batch.drop_column(column)
    op.drop_index('ix_sites_auto_upgrade', table_name='sites')
    op.drop_column('sites', 'auto_upgrade')  # SQLite 3.35+ drops a column in place (the trigger stays)
    op.drop_column('sites', 'upgrade_window')
