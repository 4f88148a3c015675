"""Applications over HTTP: applicants submit, follow and resubmit (public); operators list, read, decide
and download materials (hq.applications).

Materials travel as base64 in the JSON body (the apply page sends the same as a multipart form);
a material is handed back only to operators, as an attachment with `nosniff` and a sandboxing CSP.
"""

from __future__ import annotations

import base64
import binascii
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import Response
from pydantic import Field

from hq import application_files as files
from hq import applications
from hq.auth import get_hq, operator
from hq.errors import ApiError, responses
from hq.fields import SITE_ID_PATTERN, Domain, Licensee, integer, text
from hq.schemas import Categories, Regions, Strict, TierName
from hq.service import HQ
from kitcore import mailaddr
from kitcore.licence.token import MAX_DAYS

router = APIRouter(prefix="/v1/applications", tags=["applications"])
admin_router = APIRouter(prefix="/v1/admin/applications", tags=["admin"])
NumberPath = Path(..., pattern=applications.NUMBER_PATTERN, description="the application number, e.g. A-000001")
MAX_B64 = (files.MAX_FILE_BYTES + 2) // 3 * 4 + 4096  # a bit over the limit, so the limit's own message is given
Stage = Literal[(*applications.STAGES, applications.REJECTED)]  # type: ignore[valid-type]


class MaterialIn(Strict):
    kind: str = Field(pattern=r"^(identity|[a-z]{1,32})$", description="`identity`, or a category applied for")
    filename: text(files.MAX_NAME, 1)  # type: ignore[valid-type]
    content_base64: str = Field(max_length=MAX_B64, pattern=r"^[A-Za-z0-9+/]*={0,2}$")
    expires_on: date | None = Field(default=None, description="when the document expires (a reminder comes before)")


class ApplicationBody(Strict):
    applicant: Literal["company", "person"]
    name: Licensee
    email: str = Field(max_length=mailaddr.MAX_LENGTH, pattern=mailaddr.PATTERN)
    categories: Categories
    regions: Regions = Field(min_length=1, max_length=20)
    tier: TierName
    domain: Domain | None = None
    locale: Literal["en", "zh-CN"] = "en"
    materials: list[MaterialIn] = Field(default_factory=list, max_length=files.MAX_FILES)

    def to_input(self) -> applications.ApplicationIn:
        return applications.ApplicationIn(applicant=self.applicant, name=self.name, email=self.email,
                                          categories=list(self.categories),
                                          regions=list(self.regions), tier=self.tier,
                                          domain=self.domain, locale=self.locale, uploads=uploads(self.materials))


class ResubmitBody(Strict):
    secret: str = Field(pattern=applications.SECRET_PATTERN)
    materials: list[MaterialIn] = Field(min_length=1, max_length=files.MAX_FILES)


class Decision(Strict):
    to: Literal["contract_signed", "base_fee_paid", "licence_issued", "rejected"]
    why: text(1000, 1)  # type: ignore[valid-type]
    site: str | None = Field(default=None, pattern=SITE_ID_PATTERN, description="licence_issued: the site's id")
    days: integer(1, MAX_DAYS) = applications.LICENCE_DAYS  # type: ignore[valid-type]


def uploads(materials: list[MaterialIn]) -> list[files.Upload]:
    out = []
    for m in materials:
        try:
            data = base64.b64decode(m.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "material_type", f"material {m.kind}: content_base64 is not base64") from None
        out.append(files.Upload(m.kind, m.filename, data, m.expires_on))
    return out


REFUSALS = {413: "`material_too_large`: a material over 5 MiB",
            422: "`category_not_sold`: a category HQ sells nothing in; `too_many_categories`: more than the tier "
                 "allows; `material_type`: not a PDF, PNG or JPEG by content, or a name that disagrees; "
                 "`material_kind`: a material not asked for, or twice"}


@router.post("", status_code=201, summary="Apply to become a partner (HQ's initial review runs at once)",
             responses=responses(413, 422, notes=REFUSALS))
def post_application(body: ApplicationBody, hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return applications.submit(hq, body.to_input())


@router.get("/{number}", summary="An application's progress (the applicant's number and secret)",
            responses=responses(404, 422))
def get_progress(number: str = NumberPath,
                 secret: str = Header(..., alias="X-Application-Secret", pattern=applications.SECRET_PATTERN),
                 hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return applications.progress(hq, number, secret)


@router.post("/{number}/pay", summary="Pay the base fee through HQ's gateway once the contract is signed",
             responses=responses(404, 409, 422, 429, notes={409: "`wrong_stage`: the contract is not signed yet (or the fee "
                                                            "is settled); `no_gateway`: HQ takes no payments online"}))
def post_pay(number: str = NumberPath, secret: str = Header(..., alias="X-Application-Secret",
                                                            pattern=applications.SECRET_PATTERN),
             hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    from hq.payments import application_fee

    return application_fee.pay(hq, number, secret)


@router.post("/{number}/resubmit", summary="Resubmit a rejected application with fixed materials",
             responses=responses(404, 409, 413, 422, notes={**REFUSALS, 409: "`not_rejected`: not rejected"}))
def post_resubmit(body: ResubmitBody, number: str = NumberPath, hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return applications.resubmit(hq, number, body.secret, uploads(body.materials))


@admin_router.get("", summary="Applications, those waiting for a decision first", responses=responses(401, 422))
def get_applications(stage: Stage | None = Query(None), op: str = Depends(operator),
                     hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return applications.listing(hq, stage)


@admin_router.get("/{number}", summary="One application: contact, materials, every stage change",
                  responses=responses(401, 404, 422))
def get_application(number: str = NumberPath, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return applications.show(hq, number)


@admin_router.post("/{number}/decide", summary="Move an application to its next stage, or reject it (audited)",
                   responses=responses(401, 404, 409, 413, 422, notes={
                       409: "`wrong_stage`: not the application's next stage; `licence_exists`: the site id is taken"}))
def post_decision(body: Decision, number: str = NumberPath, op: str = Depends(operator),
                  hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return applications.decide(hq, op, number, body.to, body.why, body.site, body.days)


@admin_router.get("/{number}/materials/{material_id}", summary="Download a material (an attachment, never inline)",
                  responses={**responses(401, 404, 422), 200: {"description": "the file as uploaded", "content": {
                      t: {"schema": {"type": "string", "format": "binary"}} for t in files.TYPES}}})
def get_material(number: str = NumberPath, material_id: int = Path(..., ge=1, le=2**31 - 1),
                 op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> Response:
    return download(*applications.material(hq, number, material_id))


def download(filename: str, content_type: str, data: bytes) -> Response:
    """The bytes as a download: attachment, the sniffed type, no sniffing, no script even if opened."""
    return Response(data, media_type=content_type, headers={
        "Content-Disposition": files.disposition(filename), "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "no-store"})
