"""The operators' application pages: the list (by stage), one application with its materials and history,
the decision form, and material downloads (attachments, `nosniff`) — hq.applications underneath."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from hq import applications, i18n
from hq.api_applications import download
from hq.auth import get_hq
from hq.errors import ApiError
from hq.fleet_forms import check_csrf, session_of
from hq.service import HQ

router = APIRouter(include_in_schema=False)
NumberPath = Path(..., pattern=applications.NUMBER_PATTERN)


@router.get("/fleet/applications")
def applications_page(request: Request, stage: str | None = Query(None, max_length=20),
                      hq: HQ = Depends(get_hq)) -> Response:
    from hq.fleet import _render

    sess = session_of(request)
    if sess is None:
        return RedirectResponse("/fleet/login", status_code=303)
    i18n.check_lang(request)
    context: dict[str, Any] = {"operator": sess.operator, "csrf": sess.csrf, "stages": (*applications.STAGES[2:],
                               applications.REJECTED), "applications": applications.listing(hq, stage or None)}
    return _render(request, "applications.html", context)


@router.get("/fleet/applications/{number}")
def application_page(request: Request, number: str = NumberPath, msg: str = Query("", max_length=300),
                     error: str = Query("", max_length=300), hq: HQ = Depends(get_hq)) -> Response:
    from hq.fleet import _render

    sess = session_of(request)
    if sess is None:
        return RedirectResponse("/fleet/login", status_code=303)
    i18n.check_lang(request)
    context = {"operator": sess.operator, "csrf": sess.csrf, "app": applications.show(hq, number),
               "msg": msg, "error": error}
    return _render(request, "application.html", context)


@router.post("/fleet/applications/{number}/decide")
def decide(request: Request, number: str = NumberPath, csrf: str = Form(..., max_length=100),
           to: str = Form(..., max_length=20), why: str = Form("", max_length=1000),
           site: str = Form("", max_length=63), hq: HQ = Depends(get_hq)) -> Response:
    operator = check_csrf(request, csrf).operator
    target = f"/fleet/applications/{number}"
    try:
        done = applications.decide(hq, operator, number, to, why, site.strip() or None)
    except ApiError as exc:
        return RedirectResponse(f"{target}?error={quote(exc.detail.splitlines()[0][:200])}", status_code=303)
    message = f"{number}: {done['stage']}" + (f" (site {done['site']})" if done.get("site") else "")
    return RedirectResponse(f"{target}?msg={quote(message)}", status_code=303)


@router.get("/fleet/applications/{number}/materials/{material_id}")
def material(request: Request, number: str = NumberPath, material_id: int = Path(..., ge=1, le=2**31 - 1),
             hq: HQ = Depends(get_hq)) -> Response:
    if session_of(request) is None:
        return RedirectResponse("/fleet/login", status_code=303)
    return download(*applications.material(hq, number, material_id))
