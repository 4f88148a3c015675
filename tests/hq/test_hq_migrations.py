"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from hq import db
from hq.models import Base


def test_migrations_match_models(tmp_path, db_url):
    url = db_url or f"sqlite:///{tmp_path / 'hq.sqlite3'}"
    db.upgrade(url)
    db.upgrade(url)  # idempotent
    engine = create_engine(db.normalise_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert MigrationContext.configure(conn).get_current_revision() == _head()
    engine.dispose()


def _head() -> str:
    from pathlib import Path

    from alembic.script import ScriptDirectory

    return str(ScriptDirectory(str(Path(db.__file__).parent / "migrations")).get_current_head())
