"""The buyer's pages: browse, search, product and checkout, order lookup and order page."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from sitedb.tables import complaints
from storefront import checkout as co
from storefront import complaints as complaints_mod
from storefront.complaints import MAX_TEXT as COMPLAINT_MAX
from storefront import regions
from storefront.i18n import translator
from storefront.orders import (ACCESS_MAX_AGE, ACCESS_MAX_ORDERS, check_password, normalise_order_id, order_status_of,
                               order_view)
from storefront.passwords import hash_password
from storefront.payment import payment_method
from storefront.plugin_text import localised_fields
from storefront.state import ItemView, read_categories, read_item, read_items
from storefront.web import HTTPProblem, buyer_address, check_csrf, client_ip, locale_of, render, render_form_page, render_public, set_cookie, shop_of

log = logging.getLogger("storefront.shop")
router = APIRouter()
ACCESS_COOKIE = "kit_orders"


@router.get("/", name="home")
async def home(request: Request, c: str | None = None, q: str | None = None) -> Response:
    """Async on purpose: everything it reads is cached, so a hit costs no thread hop."""
    shop = shop_of(request)
    category = (c or "").strip()[:32] or None
    query = (q or "").strip()[:64] or None
    items = await shop.cache.aget(("items", category, query), lambda s: read_items(s, category, query))
    categories = await shop.cache.aget("categories", read_categories)
    await shop.alicence()
    return render_public(request, (category, query), "home.html",
                         lambda: {"items": items, "categories": categories, "category": category, "q": query})


def _item_or_404(request: Request, sku: str) -> ItemView:
    if len(sku) > 64:
        raise HTTPProblem(404, "item.not_found")
    item = shop_of(request).cache.get(("item", sku), lambda s: read_item(s, sku))
    if item is None:
        raise HTTPProblem(404, "item.not_found")
    return item


async def _aitem_or_404(request: Request, sku: str) -> ItemView:
    if len(sku) > 64:
        raise HTTPProblem(404, "item.not_found")
    item = await shop_of(request).cache.aget(("item", sku), lambda s: read_item(s, sku))
    if item is None:
        raise HTTPProblem(404, "item.not_found")
    return item


def _product_page(request: Request, item: ItemView, values: dict[str, str] | None = None,
                  errors: dict[str, str] | None = None, status: int = 200, nonce: str | None = None) -> Response:
    shop = shop_of(request)
    host = shop.plugin_host()
    return render(request, "product.html", {
        "item": item, "values": values or {"quantity": str(item.min_qty)}, "errors": errors or {},
        "plugin_fields": localised_fields(translator(locale_of(request)), host.checkout_fields()),
        "plugin_lines": _product_lines(request, host, item),
        "nonce": nonce or co.new_nonce(shop.signers.nonce, item.sku),
        "payment": payment_method(shop.settings.payment_mode), "needs_account": co.needs_account(item),
        "ask_region": _ask_region(request) or "region" in (errors or {}),
    }, status=status, private=True)


@router.get("/p/{sku}", name="product")
async def product(request: Request, sku: str) -> Response:
    shop = shop_of(request)
    item = await _aitem_or_404(request, sku)
    await shop.alicence()
    host = shop.plugin_host()
    fields = localised_fields(translator(locale_of(request)), host.checkout_fields())
    ask_region = _ask_region(request)
    # the loaded plugin set is part of the key: a plugin the licence drops takes its line off at once
    key = (item, repr(fields), shop.settings.payment_mode, ask_region, tuple(host.loaded))
    return render_form_page(request, key, "product.html", lambda: {
        "item": item, "values": {"quantity": str(item.min_qty)}, "errors": {}, "plugin_fields": fields,
        "plugin_lines": _product_lines(request, host, item),
        "payment": payment_method(shop.settings.payment_mode), "needs_account": co.needs_account(item),
        "ask_region": ask_region,
    }, nonce=co.new_nonce(shop.signers.nonce, item.sku))


def _ask_region(request: Request) -> bool:
    """The form asks the buyer's region only when the licence limits regions and the address tells none."""
    return bool(shop_of(request).licence().regions) and regions.detect(buyer_address(request)) is None


def _product_lines(request: Request, host: Any, item: ItemView) -> list[tuple[str, str]]:
    """Plugins' lines for the product slot (rendered into the cached page: once per item, locale and TTL)."""
    return host.page_lines("product", {"sku": item.sku, "name": item.name, "category": item.category,
                                       "price_cents": item.selling_price_cents, "currency": item.currency,
                                       "locale": locale_of(request)})


@router.post("/p/{sku}/checkout", name="checkout")
async def checkout(request: Request, sku: str) -> Response:
    form = dict((await request.form()).items())
    check_csrf(request, form)
    return await run_in_threadpool(_checkout, request, sku, {k: str(v) for k, v in form.items()})


def _checkout(request: Request, sku: str, raw: dict[str, str]) -> Response:
    shop = shop_of(request)
    t = translator(locale_of(request))
    item = _item_or_404(request, sku)
    values = {k: v for k, v in raw.items() if k not in ("password", "password2", "csrf")}
    nonce = raw.get("nonce", "")
    outcome = shop.metrics.checkouts.labels
    if not shop.licence().takes_orders:
        outcome("closed").inc()
        return _product_page(request, item, values, {"form": t("notice.closed")}, status=503, nonce=nonce)
    payment = payment_method(shop.settings.payment_mode)
    if payment is None:
        outcome("unavailable").inc()
        return _product_page(request, item, values, {"form": t("checkout.payment_unavailable")}, status=503, nonce=nonce)
    if shop.buyers is None:  # buyer data is only ever stored sealed
        log.error("checkout refused: no site key (KIT_SITE_KEY_FILE) to seal buyer data with")
        return _product_page(request, item, values, {"form": t("checkout.no_site_key")}, status=503, nonce=nonce)
    order_id = co.order_id_for(shop.signers.nonce, nonce, item.sku)
    if order_id is None:
        outcome("expired").inc()
        return _product_page(request, item, values, {"form": t("err.form_expired")}, status=400)
    if not shop.limits.checkout_ip.hit(client_ip(request)):
        outcome("throttled").inc()
        raise HTTPProblem(429, "err.too_many")
    host = shop.plugin_host()
    address = buyer_address(request)
    try:
        form = co.validate_form(raw, item, localised_fields(t, host.checkout_fields()), t)
        region = _region(address, raw.get("region", ""), shop.licence().regions, t)
        placed = co.place_order(shop.sessions, order_id=order_id, sku=item.sku, form=form,
                                password_hash=hash_password(form.password), buyer_ip=address,
                                buyers=shop.buyers, plugins=host, payment=payment, t=t, buyer_region=region)
    except co.CheckoutRefused as refused:
        outcome("invalid").inc()
        return _product_page(request, item, values, refused.errors, status=refused.status, nonce=nonce)
    except co.DuplicateOrder as dup:
        outcome("duplicate").inc()
        return _same_form_again(request, dup.order_id, raw.get("password", ""))
    outcome("placed").inc()
    host.emit("order_created", {
        "order_id": placed.order_id, "sku": item.sku, "category": item.category, "quantity": form.quantity,
        "unit_price_cents": placed.unit_price_cents, "discount_cents": placed.discount_cents,
        "total_cents": placed.total_cents, "currency": item.currency, "extras": placed.extras.get("plugins", {}),
    })
    response = RedirectResponse(f"/order/{placed.order_id}?placed=1", status_code=303)
    _grant_access(request, response, placed.order_id)
    return response


def _same_form_again(request: Request, order_id: str, password: str) -> Response:
    """The order a form already placed: the browser lost the first answer (and the access it granted)
    and sends the form again. Its password is the order's, the proof the lookup form asks for, so the
    buyer lands on the order itself; any other password leaves the order to the lookup form."""
    shop, client = shop_of(request), client_ip(request)
    response = RedirectResponse(f"/order/{order_id}", status_code=303)
    # the lookup form's limits hold here too: no second way to guess a password
    if password and len(password) <= 128 and shop.limits.lookup.allowed(client, order_id) \
            and _password_opens(shop, client, order_id, password):
        _grant_access(request, response, order_id)
    return response


def _password_opens(shop: Any, client: str, order_id: str, password: str) -> bool:
    """Whether `password` is the order's, counted against the per-order lookup limit either way."""
    with shop.sessions() as session:
        opened = check_password(session, order_id, password)
    if opened:
        shop.limits.lookup.succeeded(client, order_id)
    else:
        shop.limits.lookup.failed(client, order_id)
    return opened


def _region(address: str | None, confirmed: str, licensed: list[str], t: Any) -> str | None:
    """The region the order carries; the form asks the buyer to confirm one when the address gives none."""
    try:
        return regions.buyer_region(address, confirmed[:12], licensed).region
    except regions.RegionNeeded:
        raise co.CheckoutRefused({"region": t("err.region_confirm")}, status=422) from None


def _granted(request: Request) -> list[str]:
    ids = shop_of(request).signers.access.loads(request.cookies.get(ACCESS_COOKIE))
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def _grant_access(request: Request, response: Response, order_id: str) -> None:
    """Remember in a signed cookie that this browser proved the order password."""
    ids = [i for i in _granted(request) if i != order_id][-(ACCESS_MAX_ORDERS - 1):] + [order_id]
    set_cookie(request, response, ACCESS_COOKIE, shop_of(request).signers.access.dumps(ids, ACCESS_MAX_AGE), ACCESS_MAX_AGE)


def _lookup_page(request: Request, order_id: str = "", error: str | None = None, status: int = 200) -> Response:
    return render(request, "lookup.html", {"order_id": order_id, "error": error}, status=status, private=True)


@router.get("/order", name="lookup")
def lookup_form(request: Request) -> Response:
    return _lookup_page(request)


@router.post("/order", name="lookup_submit")
async def lookup_submit(request: Request) -> Response:
    form = dict((await request.form()).items())
    check_csrf(request, form)
    return await run_in_threadpool(_lookup, request, str(form.get("order_id", "")), str(form.get("password", "")))


def _lookup(request: Request, raw_id: str, password: str) -> Response:
    shop = shop_of(request)
    t = translator(locale_of(request))
    order_id = normalise_order_id(raw_id)
    counted = shop.metrics.lookups.labels
    client = client_ip(request)
    if not shop.limits.lookup_ip.hit(client) or (order_id and not shop.limits.lookup.allowed(client, order_id)):
        counted("throttled").inc()
        return _lookup_page(request, raw_id[:32], t("lookup.limited"), status=429)
    if order_id is None or not password or len(password) > 128:
        counted("failed").inc()
        return _lookup_page(request, raw_id[:32], t("lookup.failed"), status=403)
    if not _password_opens(shop, client, order_id, password):
        counted("failed").inc()
        return _lookup_page(request, order_id, t("lookup.failed"), status=403)
    counted("ok").inc()
    response = RedirectResponse(f"/order/{order_id}", status_code=303)
    _grant_access(request, response, order_id)
    return response


@router.get("/order/{order_id}/status", name="order_status")
def order_status(request: Request, order_id: str) -> Response:
    """The order's status for its own page's script (the page reloads when it changes); same access rule."""
    shop = shop_of(request)
    normal = normalise_order_id(order_id)
    if normal is None or normal not in _granted(request):
        return JSONResponse({"error": "not_found"}, status_code=404)
    with shop.sessions() as session:
        status = order_status_of(session, normal)
    if status is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse({"status": status}, headers={"Cache-Control": "no-store"})


@router.get("/order/{order_id}", name="order")
def order_page(request: Request, order_id: str, placed: str | None = None, complained: str | None = None) -> Response:
    extra = {"placed": placed == "1", "complained": complained == "1"}
    return order_page_with(request, normalise_order_id(order_id) or "", extra)


def order_page_with(request: Request, normal: str, extra: dict[str, Any], status: int = 200) -> Response:
    """The order's page (with `extra` for its forms), or the lookup page while this browser has not proved
    the order's secret — carrying a complaint's refusal, if any, there too."""
    shop = shop_of(request)
    if not normal or normal not in _granted(request):
        return _lookup_page(request, normal[:32], extra.get("complaint_error"), status=status)
    with shop.sessions() as session:
        view = order_view(session, normal, shop.site_key, shop.buyers)
        complaint = session.execute(select(complaints.c.filed_at, complaints.c.send_state, complaints.c.hq_status)
                                    .where(complaints.c.order_id == normal)).first()
    if view is None:
        return _lookup_page(request, normal)
    lines = shop.plugin_host().page_lines("order", {
        "order_id": view.id, "sku": view.sku, "category": view.category, "status": view.status,
        "quantity": view.quantity, "total_cents": view.total_cents, "currency": view.currency,
        "locale": locale_of(request), "extras": view.plugin_extras})
    context = {"order": view, "placed": False, "complained": False, "complaint_error": None, "complaint_text": "",
               "plugin_lines": lines, "complaint": complaint,
               "complaint_max": COMPLAINT_MAX, **extra}
    return render(request, "order.html", context, status=status, private=True)


@router.post("/order/{order_id}/complaint", name="complaint")
async def complain(request: Request, order_id: str) -> Response:
    form = dict((await request.form()).items())
    check_csrf(request, form)
    return await run_in_threadpool(_complain, request, order_id, str(form.get("text", "")),
                                   str(form.get("password", "")))


def _complain(request: Request, raw_id: str, text: str, password: str) -> Response:
    normal = normalise_order_id(raw_id)
    try:
        complaints_mod.file_complaint(request, normal, text, password)
    except complaints_mod.Refused as refused:
        t = translator(locale_of(request))
        return order_page_with(request, normal or "", {"complaint_error": t(refused.key),
                                                       "complaint_text": text[:COMPLAINT_MAX]},
                               status=refused.status)
    return RedirectResponse(f"/order/{normal}?complained=1", status_code=303)
