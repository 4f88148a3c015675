"""The fleet page: server-rendered HTML for operators (login, sites, review queue, actions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path as PathParam, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hq import (applications, fleet_alerts, fleet_bulk, fleet_detail, fleet_forms, fleet_payments, fleet_query, fleet_settlement, i18n,
                licences, reviews, session as sessions, sites, stock, support)
from hq.badges import badges
from hq.auth import get_hq
from hq.errors import ApiError
from hq.operators import authenticate
from hq.payments import config as payment_config
from hq.service import HQ
from hq.session import COOKIE

PAYMENT_STATES = ("pending", "paid", "held", "expired", "refunded")
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
ACTIONS = ("revoke", "suspend", "resume", "upgrade", "sync", "support-bundle")
ALERTS_SHOWN = 10  # open alerts listed above the sites (besides those of the page's sites); the filter finds the rest
RINGS = tuple(range(0, 4))  # the rings the page offers (0 = canary); any 0-99 is accepted in a link
COLUMNS = (("site", "col.site"), ("", "col.licensee"), ("state", "col.licence"), ("", "col.tier"),
           ("expires", "col.expires"), ("heartbeat", "col.heartbeat"), ("version", "col.version"), ("ring", "col.ring"),
           ("", "col.upgrades"), ("", "col.health"), ("", "col.orders_today"), ("", "col.reviews"))


def _templates():  # type: ignore[no-untyped-def]
    from fastapi.templating import Jinja2Templates

    global _JINJA
    if _JINJA is None:  # one environment (and its compiled templates) for the process
        _JINJA = Jinja2Templates(directory=str(TEMPLATES))
    return _JINJA


_JINJA = None


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page in the operator's language (`?lang=` remembered in a cookie; else HQ's default)."""
    locale = i18n.locale_of(request, get_hq(request).settings.locale)
    page = {"t": i18n.t(locale), "locale": locale, "languages": i18n.links(request), "operator": None, **context}
    response = _templates().TemplateResponse(request, template, page, status_code=status)
    if request.query_params.get("lang") in i18n.LOCALES:
        response.set_cookie(i18n.COOKIE, locale, max_age=365 * 86400, httponly=True, samesite="strict")
    return response


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
    i18n.check_lang(request)
    return _render(request, "login.html", {"error": error[:200]})


@router.post("/fleet/login")
def login(request: Request, token: str = Form(..., max_length=200), hq: HQ = Depends(get_hq)) -> Response:
    name = authenticate(hq, token.strip())
    if name is None:
        message = i18n.t(i18n.locale_of(request, hq.settings.locale))("login.bad_token")
        return RedirectResponse("/fleet/login?error=" + quote(message), status_code=303)
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
def fleet_page(request: Request, hq: HQ = Depends(get_hq)) -> Response:
    """The fleet: one page of sites (search, filters, sort, paging on the server; hq.fleet_query)."""
    with hq.one_read():  # every section's reads on one connection, in one transaction
        return _fleet_page(request, hq)


def _fleet_page(request: Request, hq: HQ) -> Response:
    sess = _session(request)
    if sess is None:
        return RedirectResponse("/fleet/login", status_code=303)
    query = fleet_query.parse(list(request.query_params.multi_items()))
    i18n.check_lang(request)
    locale = i18n.locale_of(request, hq.settings.locale)
    firing, resolved = fleet_alerts.listing(hq)
    listing = fleet_query.fetch(hq, query)
    on_page = {row["site"] for row in listing.rows}
    for site in listing.rows:
        mine = [a for a in firing if a["site"] == site["site"]]
        site["badges"] = badges(site["health"], mine, hq.settings.outbox_backlog_alert, i18n.t(locale))
    context: dict[str, Any] = {
        "operator": sess.operator, "csrf": sess.csrf, "listing": listing, "fq": query,
        "summary": listing.summary, "reviews": reviews.queue(hq),
        "alerts": _shown_alerts(firing, on_page),
        "alert_count": len(firing), "alert_history": resolved, "bundles": support.listing(hq),
        "gateways": payment_config.listing(hq), "payment_states": PAYMENT_STATES,
        "msg": request.query_params.get("msg", "")[:300], "error": request.query_params.get("error", "")[:300],
        "tiers": list(fleet_query.TIERS), "states": fleet_query.STATES, "versions": listing.versions,
        "alert_kinds": ("any", *fleet_alerts.KINDS), "rings": RINGS, "sizes": fleet_query.PAGE_SIZES,
        "upgrade_choices": fleet_query.UPGRADES,
        "bulk_actions": fleet_bulk.ACTIONS, "columns": COLUMNS,
        "stock_short": [s for s in stock.listing(hq)["skus"] if s["state"] != "in_stock"],
        "applications": applications.queue(hq),
        **fleet_settlement.context(hq),
        **fleet_payments.context(hq),
    }
    return _render(request, "fleet.html", context)


def _shown_alerts(firing: list[dict[str, Any]], on_page: set[str]) -> list[dict[str, Any]]:
    """The open alerts of the sites on this page, then others up to ALERTS_SHOWN in all (oldest first)."""
    mine = [a for a in firing if a["site"] in on_page]
    return mine + [a for a in firing if a["site"] not in on_page][:max(0, ALERTS_SHOWN - len(mine))]


@router.get("/fleet/sites/{site}", response_class=HTMLResponse)
def site_page(request: Request, site: str, hq: HQ = Depends(get_hq)) -> Response:
    """One site and its history: licences, commands and whether they were applied, versions, alerts."""
    sess = _session(request)
    if sess is None:
        return RedirectResponse("/fleet/login", status_code=303)
    if not fleet_query.valid_site(site):
        raise fleet_query.InvalidQuery(f"site: {site[:70]!r} is not a site id")
    extra = [k for k in request.query_params if k != "lang"]
    if extra:
        raise fleet_query.InvalidQuery(f"{extra[0][:40]}: not a parameter of the site page")
    i18n.check_lang(request)
    return _render(request, "site.html", {"operator": sess.operator, "csrf": sess.csrf,
                                          "d": fleet_detail.detail(hq, site),
                                          "pay": fleet_payments.site_payments(hq, site),
                                          "payment_states": PAYMENT_STATES})


@router.get("/fleet/rollouts", response_class=HTMLResponse)
def rollout_page(request: Request, hq: HQ = Depends(get_hq)) -> Response:
    """The newest rollout: its state, the ring under way, and each site's upgrade (hq.rollouts)."""
    from hq import rollouts

    sess = _session(request)
    if sess is None:
        return RedirectResponse("/fleet/login", status_code=303)
    extra = [k for k in request.query_params if k not in ("lang", "msg", "error")]
    if extra:
        raise fleet_query.InvalidQuery(f"{extra[0][:40]}: not a parameter of the rollout page")
    i18n.check_lang(request)
    try:
        shown = rollouts.status(hq)
    except ApiError:  # none yet
        shown = None
    return _render(request, "rollout.html", {"operator": sess.operator, "csrf": sess.csrf, "r": shown,
                                             "msg": request.query_params.get("msg", "")[:300],
                                             "error": request.query_params.get("error", "")[:300]})


@router.post("/fleet/rollouts/{rollout_id}/{action}")
def rollout_action(request: Request, rollout_id: str = PathParam(..., pattern=UUID_PATTERN),
                   action: str = PathParam(..., pattern="^(halt|resume|rollback)$"),
                   csrf: str = Form(..., max_length=100),
                   reason: str = Form("", max_length=500), hq: HQ = Depends(get_hq)) -> Response:
    """Halt a running rollout (with a reason), resume a halted one, or roll one back (with a reason: each site
    that rolled forward is sent its previous version), as `kitctl hq rollout halt|resume|rollback`."""
    from hq import rollouts

    operator = _check_csrf(request, csrf).operator
    try:
        if action in ("halt", "rollback"):
            if not reason.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
                raise ApiError(400, "invalid_request", "reason: one line of 1-500 characters")
            act = rollouts.halt if action == "halt" else rollouts.rollback
            done = act(hq, operator, rollout_id, reason.strip())
        else:
            done = rollouts.resume(hq, operator, rollout_id)
    except ApiError as exc:
        return RedirectResponse(f"/fleet/rollouts?error={quote(exc.detail.splitlines()[0][:200])}", status_code=303)
    message = f"rollout of {done['version']}: {done['state']}"
    return RedirectResponse(f"/fleet/rollouts?msg={quote(message)}", status_code=303)


@router.post("/fleet/bulk")
def bulk_action(request: Request, csrf: str = Form(..., max_length=100), action: str = Form(..., max_length=16),
                sites: list[str] = Form(default_factory=list), reason: str = Form("", max_length=500),
                ring: str = Form("none", max_length=8), confirm: str = Form("", max_length=8),
                back: str = Form("?", max_length=2000), scope: str = Form("selected", max_length=16),
                count: str = Form("", max_length=8), hq: HQ = Depends(get_hq)) -> Response:
    """The selection's action (or, with scope=matching, every site the list's filter matches): first a page
    that names the count, then (confirmed) the action."""
    sess = _check_csrf(request, csrf)
    if scope not in ("selected", "matching"):
        raise fleet_query.InvalidQuery(f"scope: {scope[:20]!r} is not one of selected, matching")
    filtered = fleet_query.parse(_pairs(back))
    back_query = filtered.link()
    matching = scope == "matching"
    bulk = fleet_bulk.parse(action, sites, reason, ring, matching=matching)
    t = i18n.t(i18n.locale_of(request, hq.settings.locale))
    n = fleet_bulk.count_matching(hq, filtered) if matching else len(bulk.sites)
    if confirm != "yes" or (matching and count != str(n)):  # the filter matches another count now: ask again
        what = t("bulk." + bulk.action) if bulk.action != "ring" else t("bulk.ring_to", ring=_ring_name(t, bulk.ring))
        question = t("bulk.question_matching" if matching else "bulk.question", action=what, n=n)
        return _render(request, "bulk_confirm.html", {
            "operator": sess.operator, "csrf": sess.csrf, "bulk": bulk, "back": back_query,
            "matching": matching, "count": n, "question": question,
            "button": t("bulk.confirm", action=what, n=n)})
    if matching:
        outcome = fleet_bulk.apply_matching(hq, sess.operator, bulk, filtered)
        summary = t("bulk.done", action=t("bulk." + bulk.action), done=len(outcome.done), n=n)
        if outcome.skipped:
            return _back(msg=summary, error=t("bulk.skipped", n=outcome.skipped), query=back_query)
        return _back(msg=summary, query=back_query)
    outcome = fleet_bulk.apply(hq, sess.operator, bulk)
    summary = t("bulk.done", action=t("bulk." + bulk.action), done=len(outcome.done), n=len(bulk.sites))
    if outcome.failed:
        first, why = next(iter(outcome.failed.items()))
        failed = t("bulk.failed", n=len(outcome.failed), site=first, why=why)
        return _back(msg=summary, error=failed, query=back_query)
    return _back(msg=summary, query=back_query)


def _pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    if not query.startswith("?"):
        raise fleet_query.InvalidQuery("back: not a fleet page query")
    return parse_qsl(query[1:], keep_blank_values=True)


def _ring_name(t: Any, ring: int | None) -> str:
    return t("ring.none") if ring is None else t("ring.n", n=ring)


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
    t = i18n.t(i18n.locale_of(request, hq.settings.locale))
    return _back(msg=t("flash.done", site=site, action=action))


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
