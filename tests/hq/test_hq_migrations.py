"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from hq import db
from hq.models import POSTGRES_ONLY_INDEXES, Base


def test_migrations_match_models(tmp_path, db_url):
    url = db_url or f"sqlite:///{tmp_path / 'hq.sqlite3'}"
    db.upgrade(url)
    db.upgrade(url)  # idempotent
    engine = create_engine(db.normalise_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        if conn.dialect.name != "postgresql":  # the model's PostgreSQL-only indexes are not made here
            diff = [d for d in diff if not (d[0] == "add_index" and d[1].name in POSTGRES_ONLY_INDEXES)]
        assert diff == []
        assert MigrationContext.configure(conn).get_current_revision() == _head()
    engine.dispose()


def _head() -> str:
    from pathlib import Path

    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(Path(db.__file__).parent / "migrations")).get_current_head())
