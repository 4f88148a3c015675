"""Engines and migrations for HQ's database (SQLite by default, PostgreSQL in production).

SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` transactions, so that
concurrent writers queue for the lock instead of failing half-way: that is
what makes card-key allocation atomic there. PostgreSQL relies on row locks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def one_of(column: "ColumnElement", name: str, postgres: bool) -> "ColumnElement":
    """`column` is one of the list bound as `name`: on PostgreSQL one array (`= ANY(...)`), so the SQL text is
    the same for every list length and the driver prepares it once; elsewhere an expanding IN."""
    from sqlalchemy import String, bindparam, func

    if postgres:
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == func.any(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, connect_seconds: float) -> "Engine":
    from sqlalchemy import create_engine, event

    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            # reads (HQ.read) take no write lock; WAL gives them a consistent snapshot
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("hq_read_only") else "BEGIN IMMEDIATE")

        return engine
    from kitcore.dbconnect import bound_connects, pg_connect_args

    engine = create_engine(url, pool_size=20, max_overflow=20, pool_timeout=5, pool_recycle=1800,
                           connect_args=pg_connect_args(connect_seconds))
    bound_connects(engine, connect_seconds)  # a database that went away fails a request in ~1 s, not ~10 s
    _ping_when_idle(engine)
    return engine



IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: "Engine") -> None:
    """Check a pooled connection before use only if it sat idle a while (e.g. across a database restart).

    `pool_pre_ping` costs a round trip on every checkout; under load connections
    are never idle, so this skips it where it buys nothing.
    """
    import time

    from sqlalchemy import event, exc

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_PING_SECONDS:
            return
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as error:  # the pool replaces the connection and retries
            raise exc.DisconnectionError(str(error).splitlines()[0] if str(error) else "stale connection") from None


def is_postgres(engine: "Engine") -> bool:
    return engine.dialect.name == "postgresql"


IN_LIST_MAX = 5000  # ids in one SQLite IN list (its variable limit is 32,766)


def among(conn: "Connection", column: "ColumnElement[str]", ids: list[str]) -> "list[ColumnElement[bool]]":
    """Conditions that together select the rows whose `column` is one of `ids`, one a statement.

    On PostgreSQL one condition, `column = ANY(:ids)` with the ids as one array parameter:
    an IN list of thousands of placeholders costs the driver more to convert than the
    query costs to run (the push channel reads for every site a fleet-wide command wakes).
    On SQLite, IN lists of at most `IN_LIST_MAX` ids.
    """
    from sqlalchemy import String, any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    if conn.dialect.name == "postgresql":
        return [column == any_(bindparam(None, ids, type_=ARRAY(String)))]  # anonymous: two in one statement never collide
    return [column.in_(ids[i:i + IN_LIST_MAX]) for i in range(0, len(ids), IN_LIST_MAX)]


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest schema."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine_url"] = normalise_url(url)
    command.upgrade(cfg, "head")
