"""Alembic environment for HQ: the URL comes from the caller (hq.db.upgrade)."""

from alembic import context
from sqlalchemy import create_engine

from hq.models import Base

config = context.config
url = config.attributes.get("engine_url") or config.get_main_option("sqlalchemy.url")

engine = create_engine(url)
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
