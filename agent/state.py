"""The one `site_state` row: the agent's durable memory and the storefront's view of it.

Core only (`sitedb.tables`): the agent never loads the ORM. Reads return a `Row`
(attribute access by column name); writes take the caller's `Connection`, so they
commit with whatever else the caller's transaction changes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update

from sitedb.tables import audit_log, site_state

STATE_ID = 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time the agent stores is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def ensure_state(engine: Engine, site_id: str) -> Row[Any]:
    """The site_state row, created on first start; refuses a database of another site."""
    from kitcore.errors import InvalidInput

    with engine.begin() as conn:
        state = _select_state(conn)
        if state is None:
            conn.execute(insert(site_state).values(id=STATE_ID, site_id=site_id, features=[], categories=[],
                                                   health={}))
            state = _select_state(conn)
        elif state.site_id != site_id:
            raise InvalidInput(f"the site database belongs to site {state.site_id!r}, not {site_id!r}")
        assert state is not None
        return state


def read_state(engine: Engine) -> Row[Any]:
    with engine.connect() as conn:
        state = _select_state(conn)
    if state is None:
        raise RuntimeError("site_state row missing; ensure_state() runs at start")
    return state


def _select_state(conn: Connection, for_update: bool = False) -> Row[Any] | None:
    query = select(site_state).where(site_state.c.id == STATE_ID)
    return conn.execute(query.with_for_update() if for_update else query).first()


def lock_state(conn: Connection) -> Row[Any]:
    """The state row, locked until the caller's transaction ends (PostgreSQL; SQLite has one writer)."""
    state = _select_state(conn, for_update=True)
    if state is None:
        raise RuntimeError("site_state row missing; ensure_state() runs at start")
    return state


def state_value(conn: Connection, column: str) -> Any:
    """One column of the state row."""
    return conn.execute(select(site_state.c[column]).where(site_state.c.id == STATE_ID)).scalar_one()


def update_state(conn: Connection, **values: Any) -> None:
    """Change columns of the state row inside the caller's transaction."""
    conn.execute(update(site_state).where(site_state.c.id == STATE_ID).values(**values))


def merge_health(engine: Engine, **health: Any) -> None:
    """Merge keys into site_state.health (the storefront shows it)."""
    with engine.begin() as conn:
        current = state_value(conn, "health")
        merged = {**(current or {}), **health}
        if merged != current:
            update_state(conn, health=merged)


def audit(conn: Connection, action: str, **detail: Any) -> None:
    """An operation-log entry written in the same transaction as the change it records."""
    conn.execute(insert(audit_log).values(actor="agent", action=action, detail=detail))
