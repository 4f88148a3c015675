"""The fleet page: server-rendered HTML for operators (login, sites, review queue, actions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hq import fleet_alerts, fleet_forms, fleet_settlement, licences, reviews, session as sessions, sites, support
from hq.badges import badges
from hq.auth import get_hq
from hq.errors import ApiError
from hq.operators import authenticate
from hq.payments import config as payment_config
from hq.service import HQ
from hq.session import COOKIE

PAYMENT_STATES = ("pending", "paid", "held", "expired", "refunded")

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
ACTIONS = ("revoke", "suspend", "resume", "upgrade", "sync", "support-bundle")


def _templates():  # type: ignore[no-untyped-def]
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=str(TEMPLATES))


_session = fleet_forms.session_of
_back = fleet_forms.back
_check_csrf = fleet_forms.check_csrf


@router.get("/fleet/fleet.css", include_in_schema=False)
def stylesheet() -> Response:
    return Response((TEMPLATES / "fleet.css").read_bytes(), media_type="text/css",
                    headers={"Cache-Control": "max-age=3600"})


@router.get("/", response_class=HTMLResponse)
def root() -> Response:
    return RedirectResponse("/fleet", status_code=303)


@router.get("/fleet/login", response_class=HTMLResponse)
def login_page(request: Request, error: str = "") -> Response:
    return _templates().TemplateResponse(request, "login.html", {"error": error[:200]})


@router.post("/fleet/login")
def login(request: Request, token: str = Form(..., max_length=200), hq: HQ = Depends(get_hq)) -> Response:
    name = authenticate(hq, token.strip())
    if name is None:
        return RedirectResponse("/fleet/login?error=" + quote("operator token not recognised"), status_code=303)
    cookie, _ = sessions.issue(hq, name, hq.settings.session_hours)
    resp = RedirectResponse("/fleet", status_code=303)
    resp.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", max_age=hq.settings.session_hours * 3600,
                    secure=hq.settings.public_url.startswith("https://"))
    return resp


@router.post("/fleet/logout")
def logout(request: Request, csrf: str = Form(..., max_length=100)) -> Response:
    _check_csrf(request, csrf)
    sessions.end(get_hq(request), request.cookies.get(COOKIE))
    resp = RedirectResponse("/fleet/login", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


@router.get("/fleet", response_class=HTMLResponse)
def fleet_page(request: Request, msg: str = "", error: str = "", hq: HQ = Depends(get_hq)) -> Response:
    sess = _session(request)
    if sess is None:
        return RedirectResponse("/fleet/login", status_code=303)
    firing, resolved = fleet_alerts.listing(hq)
    fleet_sites = sites.fleet(hq)
    for site in fleet_sites:
        mine = [a for a in firing if a["site"] == site["site"]]
        site["badges"] = badges(site["health"], mine, hq.settings.outbox_backlog_alert)
    context: dict[str, Any] = {
        "operator": sess.operator, "csrf": sess.csrf, "sites": fleet_sites, "reviews": reviews.queue(hq),
        "alerts": firing, "alert_history": resolved, "bundles": support.listing(hq),
        "gateways": payment_config.listing(hq), "payment_states": PAYMENT_STATES,
        "msg": msg[:200], "error": error[:200], "tiers": ["basic", "pro", "flagship"],
        **fleet_settlement.context(hq),
    }
    return _templates().TemplateResponse(request, "fleet.html", context)


@router.post("/fleet/sites/{site}/{action}")
def site_action(request: Request, site: str, action: str, csrf: str = Form(..., max_length=100),
                reason: str = Form("", max_length=500), tier: str = Form("", max_length=16),
                hq: HQ = Depends(get_hq)) -> Response:
    sess = _check_csrf(request, csrf)
    if action not in ACTIONS:
        return _back(error=f"unknown action {action}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
        return _back(error="the reason must be one line of text")
    try:
        if action == "revoke":
            licences.revoke(hq, sess.operator, site, reason.strip() or "revoked by HQ")
        elif action == "suspend":
            licences.suspend(hq, sess.operator, site, reason.strip() or "suspended by HQ")
        elif action == "resume":
            licences.resume(hq, sess.operator, site)
        elif action == "upgrade":
            licences.upgrade(hq, sess.operator, site, tier=tier or None)
        elif action == "support-bundle":
            support.request(hq, sess.operator, site)
        else:
            sites.sync_now(hq, sess.operator, site)
    except ApiError as exc:
        return _back(error=exc.detail)
    return _back(msg=f"{site}: {action} done")


@router.post("/fleet/reviews/{hq_order_id}/{decision}")
def review_action(request: Request, hq_order_id: str, decision: str, csrf: str = Form(..., max_length=100),
                  hq: HQ = Depends(get_hq)) -> Response:
    sess = _check_csrf(request, csrf)
    if decision not in ("approve", "reject"):
        return _back(error=f"unknown decision {decision}")
    try:
        result = reviews.resolve(hq, sess.operator, hq_order_id, decision)
    except ApiError as exc:
        return _back(error=exc.detail)
    return _back(msg=f"order {result['order_id']} ({result['site']}): {result['status']}")


@router.get("/fleet/support-bundles/{request_id}")
def support_bundle_download(request: Request, request_id: str, hq: HQ = Depends(get_hq)) -> Response:
    from fastapi.responses import FileResponse

    if _session(request) is None:
        return RedirectResponse("/fleet/login", status_code=303)
    path, site = support.archive(hq, request_id)
    return FileResponse(path, media_type="application/gzip", filename=f"support-{site}-{request_id[:8]}.tar.gz")
