"""The reseller API, v1 (licence feature `api-access`): catalog at the site's prices, idempotent orders, status and
card keys — for downstream shops of a pro or flagship site, with keys the site's admin issues.

Every call: the licence must grant api-access (else 403), the bearer key must be
live and hold the call's scope (401 / 403), within its rate (429), and is written
to the audit log (`api:<key id>`). Orders go through the shop's own checkout
(`storefront.checkout.place_order`): the same transaction, plugins, region rule,
payment and outbox to HQ. `POST /orders` needs an `Idempotency-Key`: the same
key and body give the same order, a different body under a used key is refused.
The OpenAPI document is at `/api/v1/openapi.json` (docs/reseller-api.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Body, Header
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from sitedb.models import CatalogItem, Order
from sitedb.tables import audit_log
from storefront import api_keys, regions
from storefront import checkout as co
from storefront.i18n import translator
from storefront.orders import order_view
from storefront.passwords import hash_password
from storefront.payment import payment_method
from storefront.ratelimit import RateLimiter
from storefront.state import item_view
from storefront.web import shop_of

FEATURE = "api-access"
VERSION = "1.0.0"
CALLS_PER_MINUTE = 60
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}\Z")
router = APIRouter(prefix="/api/v1", tags=["reseller API v1"])


class ApiError(Exception):
    """An API refusal: status and a one-line message, answered as JSON `{"error": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def api_error_response(request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.status == 429:
        headers["Retry-After"] = "60"
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers={**headers, "Cache-Control": "no-store"})


class Problem(BaseModel):
    error: str


class CatalogEntry(BaseModel):
    sku: str
    name: str
    category: str
    price_cents: int = Field(description="the site's selling price, in the currency's minor unit")
    currency: str
    stock: int | None = Field(description="card keys left; null: no stock limit (direct top-up)")
    min_qty: int
    max_qty: int
    needs_account: bool = Field(description="the order must name the account to top up")


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1000)
    contact: str = Field(min_length=1, max_length=128, description="the buyer's phone, QQ number or email")
    account: str | None = Field(default=None, max_length=128, description="the account to top up, when needed")
    buyer_region: str | None = Field(default=None, max_length=11, pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,8})?$",  # pydantic's $ is the very end
                                     description="ISO 3166 code; needed when the site's licence limits regions")


class CardKey(BaseModel):
    serial: str | None = None
    secret: str | None = None


class OrderState(BaseModel):
    order_id: str
    status: str = Field(description="pending, approved, pending_payment, delivered, review, rejected, expired, refunded")
    sku: str
    quantity: int
    unit_price_cents: int
    total_cents: int
    currency: str
    public_reason: str | None = None
    card_keys: list[CardKey] | None = Field(default=None, description="once delivered")


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in (401, 403, 404, 409, 422, 429, 503)}


def _limiter(request: Request) -> RateLimiter:
    state = request.app.state
    if getattr(state, "api_limiter", None) is None:
        state.api_limiter = RateLimiter(CALLS_PER_MINUTE, 60.0)
    return state.api_limiter  # type: ignore[no-any-return]


def _caller(request: Request, scope: str) -> api_keys.ApiKey:
    """The key making this call, with `scope`; ApiError otherwise (nothing else happens)."""
    shop = shop_of(request)
    if FEATURE not in shop.licence().features:
        raise ApiError(403, "this site's licence does not include api-access (the reseller API)")
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    with shop.engine.begin() as conn:
        key = api_keys.verify(conn, token[:128])
    if key is None:
        raise ApiError(401, "a live API key is needed: Authorization: Bearer kit_<id>_<secret>")
    if scope not in key.scopes:
        _audit(request, key, 403)
        raise ApiError(403, f"this key lacks the {scope} scope")
    if not _limiter(request).hit(key.id):
        raise ApiError(429, f"more than {CALLS_PER_MINUTE} calls a minute with this key: wait and retry")
    return key


def _audit(request: Request, key: api_keys.ApiKey, status: int, **detail: Any) -> None:
    with shop_of(request).engine.begin() as conn:
        conn.execute(insert(audit_log).values(actor=f"api:{key.id}", action="api_call", at=datetime.now(timezone.utc),
                                              detail={"method": request.method, "path": request.url.path,
                                                      "status": status, **detail}))


@router.get("/catalog", name="api_catalog", response_model=list[CatalogEntry], responses=ERRORS)
def catalog(request: Request) -> list[CatalogEntry]:
    """Everything on sale, at this site's prices (never below HQ's)."""
    key = _caller(request, "catalog:read")
    with shop_of(request).sessions() as s:
        rows = list(s.scalars(select(CatalogItem).where(CatalogItem.status == "active").order_by(CatalogItem.sku)))
    entries = [CatalogEntry(sku=r.sku, name=r.name, category=r.category, price_cents=max(r.price_cents, r.hq_price_cents),
                            currency=r.currency, stock=r.stock, min_qty=r.min_qty, max_qty=r.max_qty,
                            needs_account=bool(r.account_pattern) or r.stock_kind == "direct_topup") for r in rows]
    _audit(request, key, 200)
    return entries


def _order_id(request: Request, key_id: str, idempotency: str) -> str:
    """The order number one key and Idempotency-Key always give (so a retry finds the first order)."""
    mac = shop_of(request).signers.nonce.mac(f"api-order:{key_id}:{idempotency}".encode())
    return "R" + base64.b32encode(hashlib.sha256(mac.encode()).digest()).decode("ascii")[:19]


@router.post("/orders", name="api_order_create", response_model=OrderState, status_code=201,
             responses={**ERRORS, 200: {"model": OrderState, "description": "the order this Idempotency-Key made before"}})
async def create_order(request: Request, body: OrderRequest = Body(...),
                       idempotency_key: str = Header(..., alias="Idempotency-Key", min_length=8, max_length=64)) -> Any:
    """Place an order as the shop's checkout does; the same Idempotency-Key and body give the same order."""
    return await run_in_threadpool(_create_order, request, body, idempotency_key)


def _create_order(request: Request, body: OrderRequest, idempotency: str) -> Any:
    key = _caller(request, "orders:write")
    if not IDEMPOTENCY_KEY.match(idempotency):
        raise ApiError(422, "Idempotency-Key: 8-64 letters, digits, - or _")
    shop = shop_of(request)
    t = translator("en")
    fingerprint = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()
    order_id = _order_id(request, key.id, idempotency)
    with shop.sessions() as s:
        item = s.get(CatalogItem, body.sku)
        existing = s.get(Order, order_id)
        if existing is not None:
            return _again(request, key, existing, fingerprint)
    if item is None or item.status != "active":
        raise ApiError(404, f"no product {body.sku} on sale")
    payment = payment_method(shop.settings.payment_mode)
    if payment is None or shop.buyers is None or not shop.licence().takes_orders:
        raise ApiError(503, "this site takes no orders now")
    secret = secrets.token_urlsafe(24)  # the reseller reads the order through the API, never with a password
    raw = {"quantity": str(body.quantity), "contact": body.contact, "account": body.account or "",
           "password": secret, "password2": secret}
    try:
        form = co.validate_form(raw, item_view(item), [], t)
        region = regions.buyer_region(None, body.buyer_region or "", shop.licence().regions).region
        placed = co.place_order(shop.sessions, order_id=order_id, sku=item.sku, form=form,
                                password_hash=hash_password(secret), buyer_ip=None, buyers=shop.buyers,
                                plugins=shop.plugin_host(), payment=payment, t=t, buyer_region=region,
                                origin={"key": key.id, "request": fingerprint})
    except regions.RegionNeeded:
        raise ApiError(422, "buyer_region is needed: this site's licence limits regions") from None
    except co.CheckoutRefused as refused:
        _audit(request, key, refused.status, order_id=order_id)
        raise ApiError(refused.status if refused.status != 400 else 422,
                       "; ".join(v if k == "form" else f"{k}: {v}" for k, v in refused.errors.items())) from None
    except co.DuplicateOrder:
        with shop.sessions() as s:
            return _again(request, key, s.get(Order, order_id), fingerprint)
    _audit(request, key, 201, order_id=placed.order_id)
    return JSONResponse(_state(request, placed.order_id).model_dump(), status_code=201)


def _again(request: Request, key: api_keys.ApiKey, order: Order | None, fingerprint: str) -> JSONResponse:
    origin = ((order.extras or {}).get("api") or {}) if order is not None else {}
    if order is None or origin.get("key") != key.id:
        raise ApiError(409, "this Idempotency-Key cannot be used")
    if origin.get("request") != fingerprint:
        raise ApiError(409, "this Idempotency-Key was used for a different order")
    _audit(request, key, 200, order_id=order.id, replay=True)
    return JSONResponse(_state(request, order.id).model_dump(), status_code=200)


def _state(request: Request, order_id: str) -> OrderState:
    shop = shop_of(request)
    with shop.sessions() as s:
        view = order_view(s, order_id, shop.site_key, shop.buyers)
    assert view is not None
    keys = [CardKey(serial=k.get("serial"), secret=k.get("secret")) for k in view.card_keys or []] or None
    return OrderState(order_id=view.id, status=view.status, sku=view.sku, quantity=view.quantity,
                      unit_price_cents=view.unit_price_cents, total_cents=view.total_cents, currency=view.currency,
                      public_reason=view.public_reason, card_keys=keys if view.status == "delivered" else None)


@router.get("/orders/{order_id}", name="api_order", response_model=OrderState, responses=ERRORS)
def read_order(request: Request, order_id: str) -> Any:
    """An order this key placed: its status, and its card keys once delivered."""
    key = _caller(request, "orders:read")
    with shop_of(request).sessions() as s:
        order = s.get(Order, order_id[:32])
        mine = order is not None and ((order.extras or {}).get("api") or {}).get("key") == key.id
    if not mine:
        _audit(request, key, 404)
        raise ApiError(404, "no order with this number was placed with this key")
    _audit(request, key, 200, order_id=order_id)
    return _state(request, order_id)


@router.get("/openapi.json", name="api_openapi", include_in_schema=False)
def openapi(request: Request) -> JSONResponse:
    """The reseller API's OpenAPI document (public: it describes, it serves nothing)."""
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title="kitctl reseller API", version=VERSION, routes=router.routes,
                      description="Catalog at this site's prices, idempotent orders, status and card keys. "
                                  "Authorization: Bearer kit_<id>_<secret> (the site's admin issues keys).")
    return JSONResponse(doc)
