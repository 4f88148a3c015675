"""The fleet page at 10,000 sites: who runs a site and where (licensee, domain), its rollout ring,
the indexes its filters, sorts and prefix search use, and each site's version history.

`site_versions` is kept by a trigger on `sites`: a heartbeat that carries a version other than
the last one adds a row, in the same transaction, whatever path recorded the beat (the
PostgreSQL batch or the SQLite heartbeat); a beat with the same version adds nothing.

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

PG_FUNCTION = """
CREATE FUNCTION hq_site_versions_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO site_versions (site_id, version, seen_at) VALUES (NEW.id, NEW.version, NEW.last_heartbeat_at);
    RETURN NULL;
END $$
"""
PG_TRIGGER = ("CREATE TRIGGER sites_versions AFTER UPDATE OF version ON sites FOR EACH ROW "
              "WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION hq_site_versions_add()")
SQLITE_TRIGGER = """
CREATE TRIGGER sites_versions AFTER UPDATE OF version ON sites WHEN NEW.version IS NOT OLD.version
BEGIN
    INSERT INTO site_versions (site_id, version, seen_at) VALUES (NEW.id, NEW.version, NEW.last_heartbeat_at);
END
"""
SITE_INDEXES = (("ix_sites_status", ["status", "id"]), ("ix_sites_version", ["version", "id"]),
                ("ix_sites_ring", ["ring", "id"]), ("ix_sites_heartbeat", ["last_heartbeat_at", "id"]))
PREFIX_INDEXES = (("ix_sites_id_prefix", "id"), ("ix_sites_domain", "domain"), ("ix_sites_licensee", "licensee"))


def upgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('licensee', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('domain', sa.String(length=253), nullable=True))
        batch_op.add_column(sa.Column('ring', sa.Integer(), nullable=True))
        for name, columns in SITE_INDEXES:
            batch_op.create_index(name, columns, unique=False)
        for name, column in PREFIX_INDEXES:  # LIKE 'prefix%' uses them on PostgreSQL whatever the collation
            batch_op.create_index(name, [column], unique=False, postgresql_ops={column: 'varchar_pattern_ops'})
    with op.batch_alter_table('licences', schema=None) as batch_op:
        batch_op.create_index('ix_licences_tier', ['tier'], unique=False)
        batch_op.create_index('ix_licences_expires', ['expires_at'], unique=False)
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        'site_versions',
        sa.Column('id', big_id, autoincrement=True, nullable=False),
        sa.Column('site_id', sa.String(length=63), nullable=False),
        sa.Column('version', sa.String(length=64), nullable=True),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_site_versions_site', 'site_versions', ['site_id', 'id'], unique=False)
    op.execute("INSERT INTO site_versions (site_id, version, seen_at) "
               "SELECT id, version, last_heartbeat_at FROM sites WHERE version IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS sites_versions" + (" ON sites" if op.get_bind().dialect.name == "postgresql"
                                                          else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hq_site_versions_add()")
    op.drop_index('ix_site_versions_site', table_name='site_versions')
    op.drop_table('site_versions')
    with op.batch_alter_table('licences', schema=None) as batch_op:
        batch_op.drop_index('ix_licences_expires')
        batch_op.drop_index('ix_licences_tier')
    with op.batch_alter_table('sites', schema=None) as batch_op:
        for name, _ in PREFIX_INDEXES + SITE_INDEXES:
            batch_op.drop_index(name)
        batch_op.drop_column('ring')
        batch_op.drop_column('domain')
        batch_op.drop_column('licensee')
