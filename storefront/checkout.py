"""Checkout: validate the buyer's form, then write the order row (the outbox) in one transaction.

Nothing here calls HQ. The order id is derived from the signed form nonce,
so a double submit or a retried request finds the same row instead of
creating a duplicate order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sitedb.buyer import Buyer, BuyerBox
from sitedb.models import CatalogItem, Order, SiteState
from storefront import regions
from storefront.plugin_text import plugin_text
from storefront.signing import Signer
from storefront.state import ItemView

CONTACT = re.compile(r"^(?:[^@\s<>]{1,64}@[^@\s<>]{1,120}\.[A-Za-z]{2,24}|\+?[0-9][0-9 \-]{4,19})\Z")
NONCE_MAX_AGE = 24 * 3600
Translate = Callable[..., str]


@dataclass
class CheckoutForm:
    quantity: int
    account: str | None
    contact: str
    password: str
    fields: dict[str, str] = field(default_factory=dict)
    nonce: str = ""


class CheckoutRefused(Exception):
    """The order was not written; `errors` maps a form field to a message for the buyer."""

    def __init__(self, errors: dict[str, str], status: int = 422) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors, self.status = errors, status


class DuplicateOrder(Exception):
    """This form was already submitted: the order exists under `order_id`."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id


def new_nonce(signer: Signer, sku: str) -> str:
    return signer.dumps({"n": secrets.token_hex(16), "s": sku, "t": int(time.time())}, NONCE_MAX_AGE)


def order_id_for(signer: Signer, nonce: str, sku: str) -> str | None:
    """The order number this form will create: date of the form + 12 characters only the server can derive."""
    payload = signer.loads(nonce)
    if not isinstance(payload, dict) or payload.get("s") != sku:
        return None
    day = datetime.fromtimestamp(int(payload["t"]), timezone.utc).strftime("%y%m%d")
    digest = hmac.new(signer.mac(b"order-id").encode(), str(payload["n"]).encode(), hashlib.sha256).digest()
    return day + base64.b32encode(digest).decode("ascii")[:12]


def _int_field(raw: str, message: str, errors: dict[str, str], name: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        errors[name] = message
        return 0


def validate_form(raw: dict[str, str], item: ItemView, plugin_fields: list[dict[str, Any]], t: Translate) -> CheckoutForm:
    """Check every field against the product; raise CheckoutRefused listing each problem."""
    errors: dict[str, str] = {}
    quantity = _int_field(raw.get("quantity", ""), t("err.quantity_number"), errors, "quantity")
    if "quantity" not in errors and not item.min_qty <= quantity <= item.max_qty:
        errors["quantity"] = t("err.quantity_range", min=item.min_qty, max=item.max_qty)
    elif "quantity" not in errors and not item.in_stock:
        errors["quantity"] = t("err.sold_out")
    elif "quantity" not in errors and item.stock is not None and quantity > item.stock:
        errors["quantity"] = t("err.stock", stock=item.stock)
    account = raw.get("account", "").strip() or None
    if needs_account(item):
        if not account:
            errors["account"] = t("err.account_required")
        elif len(account) > 128 or not _matches(item.account_pattern, account):
            errors["account"] = t("err.account_pattern")
    else:
        account = None
    contact = raw.get("contact", "").strip()
    if not contact:
        errors["contact"] = t("err.contact_required")
    elif len(contact) > 128 or not CONTACT.match(contact):
        errors["contact"] = t("err.contact_format")
    password = raw.get("password", "")
    if not 6 <= len(password) <= 128:
        errors["password"] = t("err.password_length")
    elif password != raw.get("password2", ""):
        errors["password2"] = t("err.password_mismatch")
    values: dict[str, str] = {}
    for spec in plugin_fields:
        name = str(spec["name"])
        value = raw.get("x_" + name, "").strip()
        if spec.get("required") and not value:
            errors["x_" + name] = t("err.required", label=spec.get("label", name))
        elif len(value) > int(spec.get("max_length", 200)):
            errors["x_" + name] = t("err.too_long", label=spec.get("label", name), max=spec.get("max_length", 200))
        elif value:
            values[name] = value
    if errors:
        raise CheckoutRefused(errors)
    return CheckoutForm(quantity=quantity, account=account, contact=contact, password=password, fields=values,
                        nonce=raw.get("nonce", ""))


def needs_account(item: ItemView) -> bool:
    return bool(item.account_pattern) or item.stock_kind == "direct_topup"


def _matches(pattern: str | None, account: str) -> bool:
    if not pattern:
        return 1 <= len(account) <= 128
    try:
        return re.fullmatch(pattern, account) is not None
    except re.error:
        return False


def _check_region(buyer_region: str | None, licensed: list[str], t: Translate) -> None:
    """Against the licence as the transaction reads it (the page's cached copy may be older): a limited site
    takes no order without a region, and none from outside its regions."""
    if buyer_region is None and licensed:
        raise CheckoutRefused({"region": t("err.region_confirm")}, status=422)
    if buyer_region is not None and not regions.allowed(buyer_region, licensed):
        shown = t("region.other") if buyer_region == regions.OTHER else buyer_region
        raise CheckoutRefused({"form": t("err.region_outside", region=shown)}, status=403)


@dataclass
class PlacedOrder:
    order_id: str
    unit_price_cents: int
    discount_cents: int
    total_cents: int
    extras: dict[str, Any]


def place_order(
    sessions: sessionmaker[Session], *, order_id: str, sku: str, form: CheckoutForm, password_hash: str,
    buyer_ip: str | None, buyers: BuyerBox, plugins: Any, payment: Any, t: Translate, buyer_region: str | None = None,
    origin: dict[str, Any] | None = None,
) -> PlacedOrder:
    """Write the order in ONE transaction, re-checking licence, item and price inside it.

    The buyer's contact, account and IP are stored sealed with the site key (`sitedb.buyer`).

    Raises CheckoutRefused (nothing written) or DuplicateOrder (already written).
    """
    try:
        with sessions.begin() as session:
            if session.get(Order, order_id) is not None:
                raise DuplicateOrder(order_id)
            state = session.get(SiteState, 1)
            if state is None or not state.takes_orders:
                raise CheckoutRefused({"form": t("notice.closed")}, status=503)
            _check_region(buyer_region, list(state.regions or []), t)
            item = session.get(CatalogItem, sku)
            if item is None or item.status != "active":
                raise CheckoutRefused({"form": t("err.unavailable")}, status=409)
            if item.stock_state == "sold_out" or item.stock == 0:
                raise CheckoutRefused({"quantity": t("err.sold_out")}, status=409)
            if item.stock is not None and form.quantity > item.stock:
                raise CheckoutRefused({"quantity": t("err.stock", stock=item.stock)}, status=409)
            unit = max(item.price_cents, item.hq_price_cents)
            floor = item.hq_price_cents * form.quantity
            adjust = plugins.adjust_checkout(session, {
                "sku": item.sku, "category": item.category, "quantity": form.quantity, "unit_price_cents": unit,
                "hq_price_cents": item.hq_price_cents, "currency": item.currency, "fields": dict(form.fields),
                "buyer_region": buyer_region, "now": datetime.now(timezone.utc),
            }) or {}
            if adjust.get("errors"):
                raise CheckoutRefused({"x_" + k: plugin_text(t, v) for k, v in adjust["errors"].items()})
            discount = max(0, int(adjust.get("discount_cents", 0) or 0))
            total = max(unit * form.quantity - discount, floor)
            extras = {"plugins": adjust.get("extras", {}) or {},
                      "payment": payment.start(order_id, total, item.currency)}
            if origin:
                extras["api"] = origin  # the reseller API key that placed it (only that key reads it back)
            session.add(Order(
                id=order_id, sku=item.sku, item_name=item.name, category=item.category, quantity=form.quantity,
                unit_price_cents=unit, discount_cents=unit * form.quantity - total, total_cents=total,
                hq_price_cents=item.hq_price_cents, currency=item.currency,
                buyer_sealed=buyers.seal(order_id, Buyer(form.contact, form.account, buyer_ip)),
                buyer_contact_index=buyers.contact_index(form.contact), password_hash=password_hash, extras=extras,
                buyer_region=buyer_region,
                status="pending", reasons=[],
            ))
            session.flush()  # a concurrent duplicate fails here, inside the transaction
    except IntegrityError:
        raise DuplicateOrder(order_id) from None
    return PlacedOrder(order_id=order_id, unit_price_cents=unit, discount_cents=unit * form.quantity - total,
                       total_cents=total, extras=extras)
