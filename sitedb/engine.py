"""Connecting to the site database with the durability the outbox needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event

from kitcore.dbconnect import bound_connects, pg_connect_args
from kitcore.net import CONNECT_DEADLINE

# PostgreSQL connections an engine keeps, and never more: a burst of requests reuses them instead of
# opening and closing overflow connections, each a name lookup, a TCP connect and a backend start that
# take seconds on a loaded host (and a page "under maintenance" when they exceed the connect deadline).
# The storefront runs at most this many request threads (storefront.app), so none waits for a connection.
POOL_SIZE = 12
if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, connect_timeout: float = CONNECT_DEADLINE, statement_timeout: float | None = None) -> Engine:
    """An engine; on SQLite: WAL, synchronous=FULL (a checkout survives power loss), busy wait.

    On PostgreSQL a new connection is made within `connect_timeout` seconds or fails
    (name resolution included), at most POOL_SIZE are opened and then kept (none is closed
    after a burst to be opened again), a pooled connection is checked before use and a dead one
    is never handed out again, and `statement_timeout` (if given) bounds every statement.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=3,
                           pool_recycle=1800, connect_args=pg_connect_args(connect_timeout, statement_timeout))
    bound_connects(engine, connect_timeout)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """ORM sessions for the storefront; imported here so the agent (Core only) never loads the ORM."""
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)
