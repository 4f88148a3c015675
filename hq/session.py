"""Operator sessions for the fleet page, kept server-side so they can be ended.

The cookie is 256 random bits; HQ keeps only its SHA-256 with the operator,
a CSRF token for the forms, and an expiry. A session is valid while its row
exists, has not expired, and its operator is not disabled: logout deletes
the row, disabling or rotating an operator deletes all of theirs, so an old
cookie stops working at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from hq.clock import utcnow
from hq.models import Operator, OperatorSession as SessionRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hq.service import HQ

COOKIE = "hq_session"
MAX_COOKIE = 100


@dataclass(frozen=True)
class OperatorSession:
    operator: str
    csrf: str


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def issue(hq: "HQ", operator: str, hours: int) -> tuple[str, OperatorSession]:
    """A new session for `operator` (who must exist and be enabled); returns the cookie value."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = utcnow()
    with hq.session() as s:
        op_id = s.scalar(select(Operator.id).where(Operator.name == operator, Operator.disabled_at.is_(None)))
        if op_id is None:
            raise LookupError(f"operator {operator!r} cannot log in")
        s.execute(delete(SessionRow).where(SessionRow.expires_at < now))  # housekeeping, a few rows at most
        s.add(SessionRow(id_sha256=_digest(cookie), operator_id=op_id, csrf=csrf, created_at=now,
                         expires_at=now + timedelta(hours=hours)))
    return cookie, OperatorSession(operator, csrf)


def read(hq: "HQ", cookie: str | None) -> OperatorSession | None:
    """The live session this cookie names, or None."""
    if not cookie or len(cookie) > MAX_COOKIE:
        return None
    with hq.read() as conn:
        row = conn.execute(
            select(Operator.name, SessionRow.csrf)
            .join(Operator, Operator.id == SessionRow.operator_id)
            .where(SessionRow.id_sha256 == _digest(cookie), SessionRow.expires_at > utcnow(),
                   Operator.disabled_at.is_(None))).first()
    return OperatorSession(row.name, row.csrf) if row else None


def end(hq: "HQ", cookie: str | None) -> None:
    """Logout: the session's row is gone, so the cookie is worth nothing even if kept."""
    if cookie and len(cookie) <= MAX_COOKIE:
        with hq.session() as s:
            s.execute(delete(SessionRow).where(SessionRow.id_sha256 == _digest(cookie)))


def end_all(session: "Session", operator_id: int) -> int:
    """Every session of one operator, in the caller's transaction; returns how many ended."""
    result = session.execute(delete(SessionRow).where(SessionRow.operator_id == operator_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
