"""Complaints over HTTP: a site's agent passes on its buyers' complaints; operators list and resolve them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from hq import complaints
from hq.auth import SiteCaller, get_hq, operator, site_active
from hq.errors import responses
from hq.fields import ORDER_ID_PATTERN, SITE_ID_PATTERN, Timestamp
from hq.schemas import Strict
from hq.service import HQ

router = APIRouter(prefix="/v1/complaints", tags=["complaints"])
admin_router = APIRouter(prefix="/v1/admin/complaints", tags=["admin"])
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class ComplaintIn(Strict):
    complaint_id: str = Field(pattern=UUID_PATTERN, description="the site's id: a resend is the same complaint")
    order_id: str = Field(pattern=ORDER_ID_PATTERN)
    text: str = Field(min_length=1, max_length=complaints.MAX_TEXT, pattern=r"\S")
    filed_at: Timestamp


class Resolution(Strict):
    resolution: str = Field(min_length=1, max_length=complaints.MAX_RESOLUTION, pattern=r"\S")


@router.post("", summary="A buyer's complaint about one of the site's orders (once per order)",
             responses=responses(401, 403, 409, 413, 422, 429, notes={
                 409: "`duplicate_complaint`: the order already has another complaint; `idempotency_conflict`: "
                      "this complaint id was sent before with other content"}))
def post_complaint(body: ComplaintIn, caller: SiteCaller = Depends(site_active),
                   hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return complaints.record(hq, caller.site_id, body.complaint_id, body.order_id, body.text, body.filed_at)


@admin_router.get("", summary="Buyers' complaints, newest first", responses=responses(401, 422))
def get_complaints(status: str | None = Query(None, pattern="^(open|resolved)$"),
                   site: str | None = Query(None, pattern=SITE_ID_PATTERN), op: str = Depends(operator),
                   hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return complaints.listing(hq, status, site)


@admin_router.post("/{complaint_id}/resolve", summary="Close a complaint with what was done (audited)",
                   responses=responses(401, 404, 409, 413, 422, notes={409: "`already_resolved`"}))
def post_resolve(body: Resolution, complaint_id: int = Path(..., ge=1, le=2**31 - 1), op: str = Depends(operator),
                 hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return complaints.resolve(hq, op, complaint_id, body.resolution)
