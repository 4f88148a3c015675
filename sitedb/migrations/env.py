"""Alembic environment for the site database."""

from alembic import context
from sqlalchemy import text

from sitedb.engine import make_engine
from sitedb.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


# The storefront and the agent start together and both migrate: on PostgreSQL the second waits
# for the first (a transaction-scoped advisory lock), then finds the schema current.
MIGRATION_LOCK = 0x6B6974_0001  # "kit" 1


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
