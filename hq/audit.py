"""The audit log: every change an operator (or HQ itself) makes, with who and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq.clock import iso, utcnow
from hq.models import AuditEvent


def record(session: Session, operator: str, action: str, site_id: str | None = None, **detail: Any) -> None:
    """Add an audit event in the caller's transaction (so it commits with the change)."""
    session.add(AuditEvent(at=utcnow(), operator=operator, action=action, site_id=site_id, detail=detail))


def recent(session: Session, limit: int = 100, site_id: str | None = None) -> list[dict[str, Any]]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if site_id:
        query = query.where(AuditEvent.site_id == site_id)
    return [
        {"id": e.id, "at": iso(e.at), "operator": e.operator, "action": e.action, "site": e.site_id, "detail": e.detail}
        for e in session.scalars(query)
    ]
