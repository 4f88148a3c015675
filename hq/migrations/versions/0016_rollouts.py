"""Rollouts by rings: a kit version sent ring by ring as signed `upgrade` commands (hq.rollouts).

Revision ID: 0016
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rollouts',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('version', sa.String(length=128), nullable=False),
        sa.Column('rings', sa.JSON(), nullable=False),
        sa.Column('soak_seconds', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('ring_index', sa.Integer(), nullable=False),
        sa.Column('ring_done_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=True),
        sa.Column('created_by', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rollouts_state', 'rollouts', ['state'], unique=False)
    op.create_table(
        'rollout_sites',
        sa.Column('rollout_id', sa.String(length=36), nullable=False),
        sa.Column('site_id', sa.String(length=63), nullable=False),
        sa.Column('ring', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('command_id', sa.String(length=36), nullable=True),
        sa.Column('detail', sa.String(length=300), nullable=True),
        sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id']),
        sa.ForeignKeyConstraint(['site_id'], ['sites.id']),
        sa.PrimaryKeyConstraint('rollout_id', 'site_id'),
    )
    op.create_index('ix_rollout_sites_command_id', 'rollout_sites', ['command_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_rollout_sites_command_id', table_name='rollout_sites')
    op.drop_table('rollout_sites')
    op.drop_index('ix_rollouts_state', table_name='rollouts')
    op.drop_table('rollouts')
