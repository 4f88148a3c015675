"""Alembic environment for the site database."""

from alembic import context

from sitedb.engine import make_engine
from sitedb.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


# The storefront and the agent both migrate when they start; on a new database they start together.
MIGRATION_LOCK = 0x6B69745F6D6967  # "kit_mig": one PostgreSQL advisory lock for the site schema


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # the second waits, then finds the schema current
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
