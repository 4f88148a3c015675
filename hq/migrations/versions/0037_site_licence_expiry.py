"""The fleet page's expiry sort and its active/expired filters without a join: `sites.licence_expires_at`,
the expiry of the site's current licence, indexed `(licence_expires_at, id)` (and descending on PostgreSQL).

Triggers keep it, on both databases and whatever path writes the rows: a site whose `current_jti` is set
or changed takes that licence's expiry (or keeps the value given while the licence row is not written
yet), and a licence written (or its expiry changed) after the site names it sets it on its site. So
whichever of the two an ORM flush writes first, the site ends with its licence's expiry; a bulk seed
that gives the value with the site (hq.testing.seed_fleet) costs no second write of each site.

Revision ID: 0037
Revises: 0035
"""
from alembic import op
import sqlalchemy as sa


revision = '0037'
down_revision = '0035'
branch_labels = None
depends_on = None

PG = (
    """CREATE FUNCTION hq_site_expiry_of_site() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.licence_expires_at := CASE WHEN NEW.current_jti IS NULL THEN NULL ELSE
        coalesce((SELECT expires_at FROM licences WHERE jti = NEW.current_jti), NEW.licence_expires_at) END;
    RETURN NEW;
END $$""",
    """CREATE FUNCTION hq_site_expiry_of_licence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sites SET licence_expires_at = NEW.expires_at
     WHERE id = NEW.site_id AND current_jti = NEW.jti AND licence_expires_at IS DISTINCT FROM NEW.expires_at;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER sites_expiry BEFORE INSERT OR UPDATE OF current_jti ON sites FOR EACH ROW "
    "EXECUTE FUNCTION hq_site_expiry_of_site()",
    "CREATE TRIGGER licences_expiry AFTER INSERT OR UPDATE OF expires_at ON licences FOR EACH ROW "
    "EXECUTE FUNCTION hq_site_expiry_of_licence()",
    "CREATE INDEX ix_sites_expires_desc ON sites (licence_expires_at DESC NULLS LAST, id DESC)",
)
SQLITE_OF_SITE = ("UPDATE sites SET licence_expires_at = CASE WHEN NEW.current_jti IS NULL THEN NULL ELSE "
                  "coalesce((SELECT expires_at FROM licences WHERE jti = NEW.current_jti), NEW.licence_expires_at) END "
                  "WHERE id = NEW.id;")
SQLITE_OF_LICENCE = ("UPDATE sites SET licence_expires_at = NEW.expires_at "
                     "WHERE id = NEW.site_id AND current_jti = NEW.jti AND licence_expires_at IS NOT NEW.expires_at;")
SQLITE = (
    f"CREATE TRIGGER sites_expiry_insert AFTER INSERT ON sites BEGIN {SQLITE_OF_SITE} END",
    f"CREATE TRIGGER sites_expiry_update AFTER UPDATE OF current_jti ON sites BEGIN {SQLITE_OF_SITE} END",
    f"CREATE TRIGGER licences_expiry_insert AFTER INSERT ON licences BEGIN {SQLITE_OF_LICENCE} END",
    f"CREATE TRIGGER licences_expiry_update AFTER UPDATE OF expires_at ON licences BEGIN {SQLITE_OF_LICENCE} END",
)
BACKFILL = ("UPDATE sites SET licence_expires_at = (SELECT expires_at FROM licences WHERE licences.jti = sites.current_jti) "
            "WHERE current_jti IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('licence_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_sites_expires', ['licence_expires_at', 'id'], unique=False)
    op.execute(BACKFILL)
    for statement in PG if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_sites_expires_desc")
        op.execute("DROP TRIGGER licences_expiry ON licences")
        op.execute("DROP TRIGGER sites_expiry ON sites")
        op.execute("DROP FUNCTION hq_site_expiry_of_licence()")
        op.execute("DROP FUNCTION hq_site_expiry_of_site()")
    else:
        for name in ("sites_expiry_insert", "sites_expiry_update", "licences_expiry_insert", "licences_expiry_update"):
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_index('ix_sites_expires')
        batch_op.drop_column('licence_expires_at')
