"""The one `site_state` row: the agent's durable memory and the storefront's view of it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from sitedb.models import AuditEntry, SiteState

STATE_ID = 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time the agent stores is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def ensure_state(engine: Engine, site_id: str) -> SiteState:
    """The site_state row, created on first start; refuses a database of another site."""
    from kitctl.errors import InvalidInput

    with Session(engine, expire_on_commit=False) as session, session.begin():
        state = session.get(SiteState, STATE_ID)
        if state is None:
            state = SiteState(id=STATE_ID, site_id=site_id, features=[], categories=[], health={})
            session.add(state)
            session.flush()
        elif state.site_id != site_id:
            raise InvalidInput(f"the site database belongs to site {state.site_id!r}, not {site_id!r}")
        return state


def read_state(engine: Engine) -> SiteState:
    with Session(engine, expire_on_commit=False) as session:
        state = session.get(SiteState, STATE_ID)
        if state is None:
            raise RuntimeError("site_state row missing; ensure_state() runs at start")
        return state


def update_state(session: Session, **values: Any) -> None:
    """Change columns of the state row inside the caller's transaction."""
    session.execute(update(SiteState).where(SiteState.id == STATE_ID).values(**values))


def merge_health(engine: Engine, **health: Any) -> None:
    """Merge keys into site_state.health (the storefront shows it)."""
    with Session(engine) as session, session.begin():
        current = session.execute(select(SiteState.health).where(SiteState.id == STATE_ID)).scalar_one()
        merged = {**(current or {}), **health}
        if merged != current:
            update_state(session, health=merged)


def audit(session: Session, action: str, **detail: Any) -> None:
    """An operation-log entry written in the same transaction as the change it records."""
    session.add(AuditEntry(actor="agent", action=action, detail=detail))
