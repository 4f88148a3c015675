"""Staff sessions, kept in the site database so they can be ended.

The cookie is 256 random bits; the database keeps its SHA-256, the account
and an expiry. A session counts while its row exists, has not expired, and
its account is not disabled: logout deletes the row; disabling, deleting,
resetting or changing a password deletes all of the account's rows, so an
old cookie stops working at once, on every storefront process.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from sitedb.tables import admin_sessions, admin_users

if TYPE_CHECKING:
    from sqlalchemy import Row
    from sqlalchemy.orm import Session, sessionmaker

MAX_COOKIE = 100


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def start(sessions: "sessionmaker[Session]", user_id: int, max_age: int) -> str:
    """A new session for the account; returns the cookie value (never stored)."""
    cookie = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    with sessions.begin() as s:
        s.execute(delete(admin_sessions).where(admin_sessions.c.expires_at < now))
        s.execute(insert(admin_sessions).values(id_sha256=_digest(cookie), user_id=user_id, created_at=now,
                                                expires_at=now + timedelta(seconds=max_age)))
    return cookie


def account(sessions: "sessionmaker[Session]", cookie: str | None) -> "Row | None":
    """(id, username, role) of the live session's enabled account, or None."""
    if not cookie or len(cookie) > MAX_COOKIE:
        return None
    u, a = admin_users.c, admin_sessions.c
    with sessions() as s:
        return s.execute(select(u.id, u.username, u.role).join(admin_sessions, a.user_id == u.id)
                         .where(a.id_sha256 == _digest(cookie), a.expires_at > datetime.now(timezone.utc),
                                u.disabled_at.is_(None))).first()


def end(sessions: "sessionmaker[Session]", cookie: str | None) -> None:
    if cookie and len(cookie) <= MAX_COOKIE:
        with sessions.begin() as s:
            s.execute(delete(admin_sessions).where(admin_sessions.c.id_sha256 == _digest(cookie)))


def end_all(session: "Session", user_id: int) -> int:
    """Every session of the account, in the caller's transaction."""
    return int(session.execute(delete(admin_sessions).where(admin_sessions.c.user_id == user_id)).rowcount or 0)
