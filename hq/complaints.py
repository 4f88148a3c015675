"""Buyers' complaints about orders: recorded from the sites' agents, worked by operators, counted in grading.

A buyer files one on the shop's order page after proving the order's secret; the shop keeps it in its
outbox and the agent passes it on (`POST /v1/complaints`) until HQ has it. The site's own id makes a
resend the same complaint (nothing new is stored); a second complaint about the same order is refused
(409 `duplicate_complaint`). HQ keeps the order id and the buyer's words — never a contact. Operators list
and resolve them (`/v1/admin/complaints`, `kitctl hq complaints`), audited. The count per site and month
(by when HQ received it: HQ's clock, like the orders) is the `complaints` metric (hq.site_metrics).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hq import audit, grade_cache
from hq.clock import utcnow
from hq.errors import ApiError
from hq.models import Complaint

if TYPE_CHECKING:
    from hq.service import HQ

MAX_TEXT = 2000  # characters; the shop's form says the same (docs/partners.md)
MAX_RESOLUTION = 2000
STATUSES = ("open", "resolved")


def record(hq: "HQ", site_id: str, complaint_id: str, order_id: str, text: str, filed_at: datetime) -> dict[str, Any]:
    """Store a site's complaint once; the same id again answers the stored one (nothing new is stored)."""
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        raise ApiError(422, "invalid_request", f"text: 1..{MAX_TEXT} characters")
    with hq.session() as session:
        same = session.scalar(select(Complaint).where(Complaint.site_id == site_id,
                                                      Complaint.complaint_id == complaint_id))
        if same is not None:
            if (same.order_id, same.text) != (order_id, text):
                raise ApiError(409, "idempotency_conflict", f"complaint {complaint_id} was sent before with other content")
            return _out(same)
        other = session.scalar(select(Complaint.id).where(Complaint.site_id == site_id, Complaint.order_id == order_id))
        if other is not None:
            raise ApiError(409, "duplicate_complaint", f"order {order_id} already has a complaint")
    try:
        with hq.session() as session:
            row = Complaint(site_id=site_id, complaint_id=complaint_id, order_id=order_id, text=text,
                            filed_at=filed_at, received_at=utcnow(), status="open")
            session.add(row)
            session.flush()
            grade_cache.invalidate(session, site_id, row.received_at)  # the grade counts it at once
            audit.record(session, "site:" + site_id, "complaint.received", site_id, complaint=row.id, order=order_id)
            return _out(row)
    except IntegrityError:  # a concurrent resend won the race: answer what it stored
        return record(hq, site_id, complaint_id, order_id, text, filed_at)


def listing(hq: "HQ", status: str | None = None, site: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Complaints, newest first, optionally of one status and one site."""
    if status is not None and status not in STATUSES:
        raise ApiError(422, "invalid_request", f"status must be one of: {', '.join(STATUSES)}")
    query = select(Complaint).order_by(Complaint.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Complaint.status == status)
    if site is not None:
        query = query.where(Complaint.site_id == site)
    with hq.session() as session:
        return [_out(c) for c in session.scalars(query)]


def resolve(hq: "HQ", operator: str, complaint_id: int, resolution: str) -> dict[str, Any]:
    """Close an open complaint with what was done, audited; a resolved one stays as it was (409)."""
    resolution = resolution.strip()
    if not resolution or len(resolution) > MAX_RESOLUTION:
        raise ApiError(422, "invalid_request", f"resolution: 1..{MAX_RESOLUTION} characters")
    with hq.session() as session:
        row = session.get(Complaint, complaint_id)
        if row is None:
            raise ApiError(404, "not_found", f"no complaint {complaint_id}")
        if row.status != "open":
            raise ApiError(409, "already_resolved", f"complaint {complaint_id} was resolved on {row.resolved_at:%Y-%m-%d}")
        row.status, row.resolution, row.resolved_by, row.resolved_at = "resolved", resolution, operator, utcnow()
        audit.record(session, operator, "complaint.resolved", row.site_id, complaint=row.id, order=row.order_id)
        return _out(row)


def _out(row: Complaint) -> dict[str, Any]:
    return {"id": row.id, "site": row.site_id, "complaint_id": row.complaint_id, "order_id": row.order_id,
            "text": row.text, "filed_at": row.filed_at.isoformat(), "received_at": row.received_at.isoformat(),
            "status": row.status, "resolution": row.resolution, "resolved_by": row.resolved_by,
            "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None}
