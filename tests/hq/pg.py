"""HQ test databases on the suite's PostgreSQL cluster: migrated once, copied per test."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator

def plain(url: str) -> str:
    """psycopg's spelling of a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def migrated_template(server_url: str) -> str:
    """A database migrated to HQ's newest schema, to copy test databases from (fast)."""
    import psycopg

    from hq import db

    name = "hq_template_" + uuid.uuid4().hex[:8]
    with psycopg.connect(plain(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db.upgrade(server_url.rsplit("/", 1)[0] + "/" + name)
    return name


@contextmanager
def fresh_database(server_url: str, template: str | None = None) -> Iterator[str]:
    """A new database on the server (a copy of `template` if given); dropped afterwards."""
    import psycopg

    name = "hq_" + uuid.uuid4().hex[:12]
    with psycopg.connect(plain(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(plain(server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
