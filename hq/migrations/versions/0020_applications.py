"""Applications from prospective partners: the application, its materials and its stage changes (hq.applications).

Revision ID: 0020
Revises: 0019
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'applications',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('secret_sha256', sa.String(length=64), nullable=False),
        sa.Column('applicant_kind', sa.String(length=8), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('contact_enc', sa.Text(), nullable=False),
        sa.Column('contact_index', sa.String(length=64), nullable=False),
        sa.Column('categories', sa.JSON(), nullable=False),
        sa.Column('regions', sa.JSON(), nullable=False),
        sa.Column('tier', sa.String(length=16), nullable=False),
        sa.Column('domain', sa.String(length=253), nullable=True),
        sa.Column('locale', sa.String(length=8), nullable=False),
        sa.Column('stage', sa.String(length=20), nullable=False),
        sa.Column('reasons', sa.JSON(), nullable=False),
        sa.Column('site_id', sa.String(length=63), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_applications_stage', 'applications', ['stage', 'id'])
    op.create_index('ix_applications_contact', 'applications', ['contact_index'])
    op.create_table(
        'application_materials',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('application_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('filename', sa.String(length=120), nullable=False),
        sa.Column('content_type', sa.String(length=40), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('stored_as', sa.String(length=64), nullable=False),
        sa.Column('expires_on', sa.Date(), nullable=True),
        sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_application_materials_application_id'), 'application_materials', ['application_id'])
    op.create_table(
        'application_events',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('application_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('from_stage', sa.String(length=20), nullable=True),
        sa.Column('to_stage', sa.String(length=20), nullable=False),
        sa.Column('why', sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(['application_id'], ['applications.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_application_events_application_id'), 'application_events', ['application_id'])


def downgrade() -> None:
    op.drop_table('application_events')
    op.drop_table('application_materials')
    op.drop_index('ix_applications_contact', table_name='applications')
    op.drop_index('ix_applications_stage', table_name='applications')
    op.drop_table('applications')
