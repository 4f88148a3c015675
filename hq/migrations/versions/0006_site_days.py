"""Per-site daily order totals kept by a trigger, so the site's daily risk limits read one row.

Counting the day's orders (`site_id`, `received_at` >= midnight) grows with
the table: 77 ms at 1M orders received today. The trigger adds each inserted
order to its site's UTC day in the inserting transaction; the rows already
there are summed once here.

Revision ID: 0006
Revises: 0005_ledger
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005_ledger'
branch_labels = None
depends_on = None

# One grouped upsert per statement (a transition table), not one per row: a bulk INSERT … SELECT of many
# orders would otherwise update each site's row once per order inside one transaction, every update
# walking the chain of versions the earlier ones left (quadratic).
PG_FUNCTION = """
CREATE FUNCTION hq_site_days_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO site_days (site_id, day, orders, amount_cents)
    SELECT site_id, (received_at AT TIME ZONE 'UTC')::date, count(*), sum(unit_price_cents * quantity)
    FROM new_orders GROUP BY 1, 2
    ON CONFLICT (site_id, day) DO UPDATE
    SET orders = site_days.orders + EXCLUDED.orders, amount_cents = site_days.amount_cents + EXCLUDED.amount_cents;
    RETURN NULL;
END $$
"""
PG_TRIGGER = ("CREATE TRIGGER orders_site_days AFTER INSERT ON orders REFERENCING NEW TABLE AS new_orders "
              "FOR EACH STATEMENT EXECUTE FUNCTION hq_site_days_add()")
SQLITE_TRIGGER = """
CREATE TRIGGER orders_site_days AFTER INSERT ON orders
BEGIN
    INSERT INTO site_days (site_id, day, orders, amount_cents)
    VALUES (NEW.site_id, date(NEW.received_at), 1, NEW.unit_price_cents * NEW.quantity)
    ON CONFLICT (site_id, day) DO UPDATE
    SET orders = site_days.orders + 1, amount_cents = site_days.amount_cents + excluded.amount_cents;
END
"""


def upgrade() -> None:
    op.create_table('site_days',
    sa.Column('site_id', sa.String(length=63), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('site_id', 'day')
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    day = "(received_at AT TIME ZONE 'UTC')::date" if postgres else "date(received_at)"
    op.execute(f"INSERT INTO site_days (site_id, day, orders, amount_cents) "
               f"SELECT site_id, {day}, count(*), sum(unit_price_cents * quantity) FROM orders GROUP BY 1, 2")
    if postgres:
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER orders_site_days" + (" ON orders" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION hq_site_days_add()")
    op.drop_table('site_days')
