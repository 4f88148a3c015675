"""Admin pages. Every route here is behind `require_role` (see auth.ROUTE_ROLES)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from sitedb.models import AdminUser, CatalogItem, Order, PriceRule
from sitedb.tables import STATEMENT_TOTALS
from storefront import api_keys, clock, payouts, settlement
from storefront.admin import audit, reports
from storefront.admin import grade_view
from storefront.admin.health_view import health_rows
from storefront.admin.coupon_form import FormRefused, add_arguments
from storefront.admin import rules as rules_mod
from storefront import staff_sessions as sessions
from storefront.admin.auth import (ROUTE_ROLES, SESSION_COOKIE, SESSION_MAX_AGE, Staff, current_staff, least_role, may,
                                   require_role, start_session)
from storefront.admin_users import (ROLES, AdminUserError, change_password, create_user, delete_user, disable_user,
                                    enable_user, reset_password)
from storefront.i18n import translator
from storefront.passwords import verify_password
from storefront.plugin_actions import ActionRefused, plugin_of, run_action
from storefront.web import HTTPProblem, check_csrf, client_ip, locale_of, render, set_cookie, shop_of

public = APIRouter(prefix="/admin")
router = APIRouter(prefix="/admin", dependencies=[Depends(require_role)])


def _page(request: Request, template: str, ctx: dict | None = None, status: int = 200) -> Response:
    staff: Staff = request.state.staff
    menu = [(name, key) for name, key in (
        ("admin_dashboard", "admin.dashboard"), ("admin_rules", "admin.rules"), ("admin_catalog", "admin.catalog"),
        ("admin_orders", "admin.orders"), ("admin_revenue", "admin.revenue"), ("admin_settlement", "admin.settlement"),
        ("admin_payouts", "admin.payouts"), ("admin_licence", "admin.licence"),
        ("admin_health", "admin.health"), ("admin_grade", "admin.grade"), ("admin_coupons", "admin.coupons"), ("admin_users", "admin.users"),
        ("admin_audit", "admin.audit"), ("admin_api_keys", "admin.api_keys"))
        if may(staff, name) and _licensed_page(request, name)]
    base = {"staff": staff, "menu": menu, "may": lambda n: may(staff, n), "active": request.scope["route"].name}
    return render(request, template, {**base, **(ctx or {})}, status=status, private=True)


def _licensed_page(request: Request, name: str) -> bool:
    """Pages of a licence feature (coupons, the reseller API) are in the menu only while the licence grants it."""
    feature = {"admin_coupons": COUPONS, "admin_api_keys": API_ACCESS}.get(name)
    return feature is None or feature in shop_of(request).licence().features


async def _form(request: Request) -> dict[str, str]:
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(request, form)
    return form


# ---- login / logout -------------------------------------------------------

@public.get("/login", name="admin_login")
def login_form(request: Request) -> Response:
    return render(request, "admin/login.html", {"error": None, "username": ""}, private=True)


@public.post("/login", name="admin_login_submit")
async def login_submit(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_login, request, form.get("username", "").strip()[:64], form.get("password", ""))


def _login(request: Request, username: str, password: str) -> Response:
    shop = shop_of(request)
    t = translator(locale_of(request))
    client, account = client_ip(request), username.lower()
    if not shop.limits.login_ip.hit(client) or not shop.limits.login.allowed(client, account):
        return render(request, "admin/login.html", {"error": t("admin.login_limited"), "username": username}, status=429, private=True)
    with shop.sessions() as session:
        user = session.scalar(select(AdminUser).where(AdminUser.username == username)) if username else None
        ok = verify_password(user.password_hash if user else None, password[:256])
    if not ok or user is None or user.disabled_at is not None:
        shop.limits.login.failed(client, account)
        return render(request, "admin/login.html", {"error": t("admin.login_failed"), "username": username}, status=401, private=True)
    shop.limits.login.succeeded(client, account)
    response = RedirectResponse("/admin", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, start_session(request, user.id), SESSION_MAX_AGE)
    return response


@router.post("/logout", name="admin_logout")
async def logout(request: Request) -> Response:
    await _form(request)
    await run_in_threadpool(sessions.end, shop_of(request).sessions, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---- dashboard -------------------------------------------------------------

@router.get("", name="admin_dashboard")
def dashboard(request: Request) -> Response:
    """Today is the site's day (its time zone); revenue only for a role the revenue report is open to."""
    shop = shop_of(request)
    midnight = clock.local_midnight(shop.site.time_zone)
    with shop.sessions() as s:
        stats = {
            "pending": s.scalar(select(func.count()).select_from(Order).where(Order.status == "pending")) or 0,
            "today": s.scalar(select(func.count()).select_from(Order).where(Order.created_at >= midnight)) or 0,
            "on_sale": s.scalar(select(func.count()).select_from(CatalogItem).where(CatalogItem.status == "active")) or 0,
        }
        if may(request.state.staff, "admin_revenue"):
            stats["revenue_today"] = s.scalar(select(func.coalesce(func.sum(Order.total_cents), 0))
                                              .where(Order.created_at >= midnight, Order.status == "delivered")) or 0
    return _page(request, "admin/dashboard.html", {"stats": stats})


# ---- price rules -----------------------------------------------------------

def _rules_page(request: Request, *, draft_form: dict | None = None, errors: dict | None = None, changes=None,
                message: str | None = None, status: int = 200) -> Response:
    with shop_of(request).sessions() as s:
        rules = list(s.scalars(select(PriceRule).order_by(PriceRule.scope, PriceRule.target, PriceRule.id)))
        categories = [c for (c,) in s.execute(select(CatalogItem.category).distinct().order_by(CatalogItem.category))]
    return _page(request, "admin/rules.html", {
        "rules": rules, "categories": categories, "form": draft_form or {"scope": "all", "kind": "percent", "rounding": "none", "enabled": "on"},
        "errors": errors or {}, "changes": changes, "message": message, "describe": rules_mod.describe_value,
    }, status=status)


@router.get("/rules", name="admin_rules")
def rules_page(request: Request, edit: int | None = None) -> Response:
    """`?edit=ID` loads an existing rule into the form, to change it (preview first, as for a new one)."""
    if edit is None:
        return _rules_page(request)
    with shop_of(request).sessions() as s:
        rule = s.get(PriceRule, edit)
    if rule is None:
        raise HTTPProblem(404, "err.rule_missing")
    return _rules_page(request, draft_form=rules_mod.form_values(rule))


@router.post("/rules", name="admin_rules_submit")
async def rules_submit(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_rules_submit, request, form)


def _rules_submit(request: Request, form: dict[str, str]) -> Response:
    """`action=preview` shows the effect and changes nothing; `action=save` writes the rule and re-prices."""
    shop = shop_of(request)
    t = translator(locale_of(request))
    shown = {k: v for k, v in form.items() if k != "csrf"}
    try:
        with shop.sessions() as s:  # closing without commit rolls back: a preview writes nothing
            draft = rules_mod.parse_rule(form, s, t)
            if form.get("action") != "save":
                changes = rules_mod.preview(s, draft)
                s.rollback()
                return _rules_page(request, draft_form=shown, changes=changes)
            changed = rules_mod.save_rule(s, draft, actor="admin:" + request.state.staff.username)
            s.commit()
    except rules_mod.RuleRefused as refused:
        return _rules_page(request, draft_form=shown, errors=refused.errors, status=422)
    shop.clear_caches()
    return _rules_page(request, message=t("rules.saved", n=changed))


@router.post("/rules/{rule_id}/delete", name="admin_rules_delete")
async def rules_delete(request: Request, rule_id: int) -> Response:
    await _form(request)
    return await run_in_threadpool(_rules_delete, request, rule_id)


def _rules_delete(request: Request, rule_id: int) -> Response:
    shop = shop_of(request)
    t = translator(locale_of(request))
    with shop.sessions.begin() as s:
        deleted = rules_mod.delete_rule(s, rule_id, actor="admin:" + request.state.staff.username)
    shop.clear_caches()
    if not deleted:
        return _rules_page(request, errors={"form": t("err.rule_missing")}, status=404)
    return _rules_page(request, message=t("rules.deleted"))


# ---- catalog ---------------------------------------------------------------

@router.get("/catalog", name="admin_catalog")
def catalog(request: Request) -> Response:
    """Every synced item with its stock as HQ's catalog sync last carried it; low stock flagged and counted."""
    with shop_of(request).sessions() as s:
        items = list(s.scalars(select(CatalogItem).order_by(CatalogItem.category, CatalogItem.sku).limit(1000)))
    low = [i for i in items if i.status == "active" and low_stock(i.stock)]
    return _page(request, "admin/catalog.html", {"items": items, "low": len(low), "low_limit": LOW_STOCK,
                                                  "low_stock": low_stock})


LOW_STOCK = 10  # card keys left at or under this count as low (direct top-ups have no stock: never low)


def low_stock(stock: int | None) -> bool:
    return stock is not None and stock <= LOW_STOCK


# ---- orders ----------------------------------------------------------------

@router.get("/orders", name="admin_orders")
def orders(request: Request) -> Response:
    t = translator(locale_of(request))
    flt = reports.parse_filter(dict(request.query_params), t("err.date"), shop_of(request).site.time_zone)
    rows, total = ([], 0)
    if not flt.errors:
        with shop_of(request).sessions() as s:
            rows, total = reports.list_orders(s, flt, shop_of(request).buyers)
    return _page(request, "admin/orders.html", {"orders": rows, "total": total, "flt": flt,
                                                 "statuses": reports.STATUSES, "query": request.url.query},
                 status=422 if flt.errors else 200)


@router.get("/orders.csv", name="admin_orders_csv")
def orders_csv(request: Request) -> Response:
    t = translator(locale_of(request))
    flt = reports.parse_filter(dict(request.query_params), t("err.date"), shop_of(request).site.time_zone)
    if flt.errors:
        raise HTTPProblem(422, "err.date")
    shop = shop_of(request)
    return _csv_download(shop, lambda s: reports.export_csv(s, flt, shop.buyers), "orders")


def _csv_download(shop: Any, rows: Any, prefix: str) -> StreamingResponse:
    """A CSV download streamed from `rows(session)`; the session lives as long as the download."""
    def stream():  # type: ignore[no-untyped-def]
        with shop.sessions() as s:
            yield from rows(s)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(stream(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{prefix}-{stamp}.csv"', "Cache-Control": "no-store"})


# ---- the operation log ------------------------------------------------------

@router.get("/audit", name="admin_audit")
def audit_page(request: Request) -> Response:
    shop = shop_of(request)
    t = translator(locale_of(request))
    flt = audit.parse_filter(dict(request.query_params), shop.site.time_zone)
    rows, total = [], 0
    with shop.sessions() as s:
        if not flt.errors:
            rows, total = audit.entries(s, flt)
        actors, actions = audit.choices(s)
    return _page(request, "admin/audit.html", {
        "entries": rows, "total": total, "flt": flt, "errors": {k: t(v) for k, v in flt.errors.items()}, "actors": actors, "actions": actions, "shown": audit.SHOWN,
        "action_label": lambda a: audit.action_label(t, a), "actor_label": lambda a: audit.actor_label(t, a),
        "detail_text": lambda d: audit.detail_text(t, d), "csv_query": urlencode(flt.query()),
    }, status=422 if flt.errors else 200)


@router.get("/audit.csv", name="admin_audit_csv")
def audit_csv(request: Request) -> Response:
    shop = shop_of(request)
    flt = audit.parse_filter(dict(request.query_params), shop.site.time_zone)
    if flt.errors:
        raise HTTPProblem(422, next(iter(flt.errors.values())))
    return _csv_download(shop, lambda s: audit.export_csv(s, flt), "audit")


# ---- revenue, licence, health ----------------------------------------------

@router.get("/revenue", name="admin_revenue")
def revenue(request: Request, by: str = "day") -> Response:
    by = by if by in ("day", "week") else "day"
    with shop_of(request).sessions() as s:
        report = reports.revenue(s, by, days=31 if by == "day" else 12 * 7, zone=shop_of(request).site.time_zone)
    return _page(request, "admin/revenue.html", {"report": report, "by": by})


# ---- settlement: HQ's statements, the finance role's answer -----------------------

STATEMENT_ID = Path(..., ge=1, le=2**62)


@router.get("/settlement", name="admin_settlement")
def settlement_list(request: Request) -> Response:
    with shop_of(request).engine.connect() as conn:
        rows = settlement.statements(conn)
    return _page(request, "admin/settlement.html", {"statements": rows})


def _statement_page(request: Request, statement_id: int, *, errors: dict | None = None, form: dict | None = None,
                    message: str | None = None, status: int = 200) -> Response:
    with shop_of(request).engine.connect() as conn:
        view = settlement.statement(conn, statement_id)
    if view is None:
        raise HTTPProblem(404, "err.not_found")
    return _page(request, "admin/statement.html", {"view": view, "totals": STATEMENT_TOTALS, "errors": errors or {},
                                                    "form": form or {}, "message": message}, status=status)


@router.get("/settlement/{statement_id}", name="admin_settlement_statement")
def settlement_statement(request: Request, statement_id: int = STATEMENT_ID) -> Response:
    return _statement_page(request, statement_id)


@router.get("/settlement/{statement_id}/pdf", name="admin_settlement_pdf")
def settlement_pdf(request: Request, statement_id: int = STATEMENT_ID) -> Response:
    """HQ's statement as PDF, from the site's copy; only once every line is here (else it would not be HQ's)."""
    with shop_of(request).engine.connect() as conn:
        view = settlement.statement(conn, statement_id)
        if view is None:
            raise HTTPProblem(404, "err.not_found")
        if not view.complete:
            raise HTTPProblem(409, "settle.pdf_incomplete")
        data = settlement.pdf(conn, view)
    name = f"statement-{view.row.period_start.isoformat()}-{view.row.cadence}.pdf"
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


async def _answer(request: Request, statement_id: int, answer: str) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_answered, request, statement_id, answer, form.get("comment", ""))


def _answered(request: Request, statement_id: int, answer: str, comment: str) -> Response:
    """The answer waits in the site database; the agent takes it to HQ (they never call each other)."""
    t = translator(locale_of(request))
    try:
        with shop_of(request).engine.begin() as conn:
            settlement.answer(conn, statement_id, answer, comment[:4000], "admin:" + request.state.staff.username)
    except LookupError:
        raise HTTPProblem(404, "err.not_found") from None
    except settlement.AnswerRefused as refused:
        return _statement_page(request, statement_id, errors={"comment": t(str(refused))},
                               form={"comment": comment[:1000]}, status=409 if "answered" in str(refused) else 422)
    return _statement_page(request, statement_id, message=t(f"settle.{answer}_queued"))


@router.post("/settlement/{statement_id}/confirm", name="admin_settlement_confirm")
async def settlement_confirm(request: Request, statement_id: int = STATEMENT_ID) -> Response:
    return await _answer(request, statement_id, "confirmed")


@router.post("/settlement/{statement_id}/dispute", name="admin_settlement_dispute")
async def settlement_dispute(request: Request, statement_id: int = STATEMENT_ID) -> Response:
    return await _answer(request, statement_id, "disputed")


# ---- payouts: the finance role's withdrawal requests, HQ's decisions ---------------

def _payouts_page(request: Request, *, error: str | None = None, amount: str = "", message: str | None = None,
                  status: int = 200) -> Response:
    with shop_of(request).engine.connect() as conn:
        terms, rows = payouts.terms(conn), payouts.listing(conn)
    return _page(request, "admin/payouts.html", {"terms": terms, "payouts": rows, "state": payouts.state,
                                                 "error": error, "amount": amount, "message": message}, status=status)


@router.get("/payouts", name="admin_payouts")
def payouts_list(request: Request) -> Response:
    return _payouts_page(request)


@router.post("/payouts", name="admin_payouts_request")
async def payouts_request(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_requested, request, form.get("amount", "")[:40])


def _requested(request: Request, amount: str) -> Response:
    """The request waits in the site database; the agent takes it to HQ (they never call each other)."""
    t = translator(locale_of(request))
    try:
        with shop_of(request).engine.begin() as conn:
            payouts.request(conn, amount, "admin:" + request.state.staff.username)
    except payouts.PayoutRefused as refused:
        return _payouts_page(request, error=t(str(refused)), amount=amount, status=422)
    return _payouts_page(request, message=t("payout.queued"))


@router.get("/licence", name="admin_licence")
def licence(request: Request) -> Response:
    return _page(request, "admin/licence.html", {})


@router.get("/health", name="admin_health")
def health(request: Request) -> Response:
    with shop_of(request).sessions() as s:
        pending = s.scalar(select(func.count()).select_from(Order).where(Order.status == "pending")) or 0
        oldest = s.scalar(select(func.min(Order.created_at)).where(Order.status == "pending"))
    shop = shop_of(request)
    rows = health_rows(shop.licence().health, translator(locale_of(request)), shop.site.time_zone)
    return _page(request, "admin/health.html", {"pending": pending, "oldest": oldest, "agent_rows": rows})


@router.get("/grade", name="admin_grade")
def grade(request: Request) -> Response:
    """HQ's grade of the shop as the agent copied it (the storefront never calls HQ)."""
    with shop_of(request).engine.connect() as conn:
        view = grade_view.load(conn, translator(locale_of(request)))
    return _page(request, "admin/grade.html", {"grade": view})


# ---- coupons (a licence feature: the coupons plugin's own actions) ----------

COUPONS = "coupons"


def _coupons_page(request: Request, *, form: dict | None = None, errors: dict | None = None,
                  message: str | None = None, status: int = 200) -> Response:
    """The coupons and the form to add one; for a site whose licence lacks coupons, the reason instead."""
    t = translator(locale_of(request))
    shop = shop_of(request)
    try:
        rows = run_action(shop.plugin_host(), shop.engine, COUPONS, "list", {})
        refusal = None
    except ActionRefused as exc:
        rows, refusal = [], t("coupons.not_licensed", reason=str(exc))
    return _page(request, "admin/coupons.html", {"coupons": rows, "refusal": refusal, "form": form or {"kind": "percent"},
                                                  "errors": errors or {}, "message": message},
                 status=status)


@router.get("/coupons", name="admin_coupons")
def coupons(request: Request) -> Response:
    return _coupons_page(request)


@router.post("/coupons", name="admin_coupons_create")
async def coupons_create(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_coupons_create, request, form)


def _coupons_create(request: Request, form: dict[str, str]) -> Response:
    t = translator(locale_of(request))
    shop = shop_of(request)
    shown = {k: v for k, v in form.items() if k != "csrf"}
    if not _coupons_licensed(shop):
        return _coupons_page(request, form=shown, status=409)
    try:
        rows = run_action(shop.plugin_host(), shop.engine, COUPONS, "add", add_arguments(form, t))
    except FormRefused as refused:
        return _coupons_page(request, form=shown, errors=refused.errors, status=422)
    except ActionRefused as exc:
        return _coupons_page(request, form=shown, errors={"form": str(exc)}, status=422)
    return _coupons_page(request, message=t("coupons.created", code=rows[0]["code"]))


def _coupons_licensed(shop: Any) -> bool:
    """Changes are refused (409) while the licence does not grant coupons: the page says why."""
    try:
        plugin_of(shop.plugin_host(), COUPONS)
    except ActionRefused:
        return False
    return True


async def _coupon_switch(request: Request, code: str, enabled: bool) -> Response:
    await _form(request)
    return await run_in_threadpool(_coupon_switched, request, code, enabled)


def _coupon_switched(request: Request, code: str, enabled: bool) -> Response:
    t = translator(locale_of(request))
    shop = shop_of(request)
    if not _coupons_licensed(shop):
        return _coupons_page(request, status=409)
    try:
        run_action(shop.plugin_host(), shop.engine, COUPONS, "enable" if enabled else "disable", {"code": code})
    except ActionRefused:
        raise HTTPProblem(404, "err.not_found") from None
    return _coupons_page(request, message=t("coupons.enabled" if enabled else "coupons.disabled", code=code.upper()))


@router.post("/coupons/{code}/disable", name="admin_coupons_disable")
async def coupons_disable(request: Request, code: str) -> Response:
    return await _coupon_switch(request, code, False)


@router.post("/coupons/{code}/enable", name="admin_coupons_enable")
async def coupons_enable(request: Request, code: str) -> Response:
    return await _coupon_switch(request, code, True)


# ---- reseller API keys (a licence feature: api-access) -------------------------

def _api_keys_page(request: Request, *, token: tuple[str, str] | None = None, errors: dict | None = None,
                   form: dict | None = None, message: str | None = None, status: int = 200) -> Response:
    shop = shop_of(request)
    with shop.engine.connect() as conn:
        keys = api_keys.listing(conn)
    licensed = API_ACCESS in shop.licence().features
    return _page(request, "admin/api_keys.html", {"keys": keys, "scopes": api_keys.SCOPES, "token": token,
                                                   "errors": errors or {}, "form": form or {}, "message": message,
                                                   "licensed": licensed}, status=status)


@router.get("/api-keys", name="admin_api_keys")
def api_keys_page(request: Request) -> Response:
    return _api_keys_page(request)


@router.post("/api-keys", name="admin_api_keys_create")
async def api_keys_create(request: Request) -> Response:
    form = await _form(request)
    scopes = [str(v) for v in (await request.form()).getlist("scope")]
    return await run_in_threadpool(_api_key_created, request, form.get("name", "")[:80], scopes)


def _api_key_created(request: Request, name: str, scopes: list[str]) -> Response:
    t = translator(locale_of(request))
    shop = shop_of(request)
    if API_ACCESS not in shop.licence().features:
        return _api_keys_page(request, status=409)
    try:
        with shop.engine.begin() as conn:
            key_id, token = api_keys.create(conn, name, scopes, "admin:" + request.state.staff.username)
    except api_keys.KeyRefused as refused:
        field = "name" if str(refused).startswith("name") else "scope"
        return _api_keys_page(request, errors={field: t(f"api.err_{field}")}, form={"name": name, "scopes": scopes},
                              status=422)
    return _api_keys_page(request, token=(key_id, token))


async def _api_key_change(request: Request, key_id: str, action: str) -> Response:
    await _form(request)
    return await run_in_threadpool(_api_key_changed, request, key_id[:16], action)


def _api_key_changed(request: Request, key_id: str, action: str) -> Response:
    t = translator(locale_of(request))
    actor = "admin:" + request.state.staff.username
    try:
        with shop_of(request).engine.begin() as conn:
            token = api_keys.rotate(conn, key_id, actor) if action == "rotate" else api_keys.revoke(conn, key_id, actor)
    except LookupError:
        raise HTTPProblem(404, "err.not_found") from None
    if token:
        return _api_keys_page(request, token=(key_id, token))
    return _api_keys_page(request, message=t("api.revoked", kid=key_id))


@router.post("/api-keys/{key_id}/rotate", name="admin_api_keys_rotate")
async def api_keys_rotate(request: Request, key_id: str) -> Response:
    return await _api_key_change(request, key_id, "rotate")


@router.post("/api-keys/{key_id}/revoke", name="admin_api_keys_revoke")
async def api_keys_revoke(request: Request, key_id: str) -> Response:
    return await _api_key_change(request, key_id, "revoke")


API_ACCESS = "api-access"


# ---- staff accounts --------------------------------------------------------

def _users_page(request: Request, created: tuple[str, str] | None = None, errors: dict | None = None,
                form: dict | None = None, status: int = 200, message: str | None = None,
                reset: tuple[str, str] | None = None) -> Response:
    with shop_of(request).sessions() as s:
        users = list(s.scalars(select(AdminUser).order_by(AdminUser.username)))
    return _page(request, "admin/users.html", {"users": users, "roles": ROLES, "least_role": least_role(), "created": created,
                                                "errors": errors or {}, "form": form or {}, "message": message,
                                                "reset": reset},
                 status=status)


@router.get("/users", name="admin_users")
def users(request: Request) -> Response:
    return _users_page(request)


@router.post("/users", name="admin_users_create")
async def users_create(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_users_create, request, form)


def _users_create(request: Request, form: dict[str, str]) -> Response:
    t = translator(locale_of(request))
    username, role = form.get("username", "").strip(), form.get("role", "")
    errors = {}
    if role not in ROLES:
        errors["role"] = t("err.role")
    try:
        if errors:
            raise AdminUserError("role")
        with shop_of(request).sessions.begin() as s:
            password = create_user(s, username, role, actor="admin:" + request.state.staff.username)
    except AdminUserError as exc:
        if "exists" in str(exc):
            errors["username"] = t("err.username_taken")
        elif "role" not in errors:
            errors["username"] = t("err.username")
        return _users_page(request, errors=errors, form={"username": username, "role": role}, status=422)
    return _users_page(request, created=(username, password))


ACCOUNT_ACTIONS = {"disable": disable_user, "enable": enable_user, "delete": delete_user}


async def _account_action(request: Request, user_id: int, action: str) -> Response:
    await _form(request)
    return await run_in_threadpool(_account_change, request, user_id, action)


def _account_change(request: Request, user_id: int, action: str) -> Response:
    """Disable, enable, delete or reset an account; each ends the account's sessions and is audited."""
    t = translator(locale_of(request))
    actor = "admin:" + request.state.staff.username
    if user_id == request.state.staff.id and action != "reset":
        return _users_page(request, errors={"account": t("users.not_yourself")}, status=422)
    try:
        with shop_of(request).sessions.begin() as s:
            if action == "reset":
                username, password = reset_password(s, user_id, actor)
            else:
                username, password = ACCOUNT_ACTIONS[action](s, user_id, actor), None
    except AdminUserError as exc:
        if str(exc) == "no such account":
            raise HTTPProblem(404, "err.not_found") from None
        return _users_page(request, errors={"account": t("users.last_admin")}, status=422)
    if password is not None:
        return _users_page(request, reset=(username, password))
    return _users_page(request, message=t(f"users.{action}_done", user=username))


@router.post("/users/{user_id}/disable", name="admin_users_disable")
async def users_disable(request: Request, user_id: int) -> Response:
    return await _account_action(request, user_id, "disable")


@router.post("/users/{user_id}/enable", name="admin_users_enable")
async def users_enable(request: Request, user_id: int) -> Response:
    return await _account_action(request, user_id, "enable")


@router.post("/users/{user_id}/delete", name="admin_users_delete")
async def users_delete(request: Request, user_id: int) -> Response:
    return await _account_action(request, user_id, "delete")


@router.post("/users/{user_id}/reset-password", name="admin_users_reset")
async def users_reset(request: Request, user_id: int) -> Response:
    return await _account_action(request, user_id, "reset")


# ---- own password ----------------------------------------------------------

@router.get("/password", name="admin_password")
def password_page(request: Request) -> Response:
    return _page(request, "admin/password.html", {"errors": {}})


@router.post("/password", name="admin_password_submit")
async def password_submit(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_password_change, request, form)


def _password_change(request: Request, form: dict[str, str]) -> Response:
    """Every session of the account ends, this one too: the staff member signs in with the new password."""
    t = translator(locale_of(request))
    try:
        with shop_of(request).sessions.begin() as s:
            change_password(s, request.state.staff.id, form.get("current", ""), form.get("new", ""),
                            form.get("repeat", ""))
    except AdminUserError as exc:
        field = "current" if str(exc) == "current" else "new"
        return _page(request, "admin/password.html", {"errors": {field: t(f"password.{exc}")}}, status=422)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


__all__ = ["public", "router", "ROUTE_ROLES", "current_staff"]
