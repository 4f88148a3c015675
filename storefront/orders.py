"""The buyer's view of an order: found by number, opened only with the order password.

A contact alone is never enough. Card keys are unsealed with the site key only
for a browser that proved the password (a signed, short-lived access cookie).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from markupsafe import Markup

from sqlalchemy.orm import Session

from sitedb.buyer import BuyerBox
from sitedb.models import Order
from sitedb.sealing import open_sealed
from storefront.passwords import verify_password
from storefront.qr import qr_svg

log = logging.getLogger("storefront.orders")
ORDER_ID = re.compile(r"^[0-9A-Z]{6,32}\Z")
ACCESS_MAX_AGE = 30 * 60
ACCESS_MAX_ORDERS = 20


@dataclass
class PaymentView:
    """Where and until when the buyer pays (HQ's gateway; the agent wrote it onto the order row)."""

    pay_url: str
    qr: Markup | None
    amount_cents: int
    currency: str
    expires_at: datetime
    seconds_left: int


@dataclass
class OrderView:
    id: str
    status: str
    item_name: str
    sku: str
    quantity: int
    unit_price_cents: int
    discount_cents: int
    total_cents: int
    currency: str
    buyer_account: str | None
    created_at: datetime
    decided_at: datetime | None
    public_reason: str | None
    card_keys: list[dict[str, str]] = field(default_factory=list)
    delivery_unavailable: bool = False
    payment: PaymentView | None = None
    category: str = ""
    plugin_extras: dict[str, Any] = field(default_factory=dict)  # what each plugin stored at checkout, by name


def normalise_order_id(raw: str) -> str | None:
    value = raw.strip().upper()
    return value if ORDER_ID.match(value) else None


def check_password(session: Session, order_id: str, password: str) -> bool:
    """Whether `password` opens the order (constant work when the order does not exist)."""
    order = session.get(Order, order_id)
    return verify_password(order.password_hash if order else None, password)


def order_status_of(session: Session, order_id: str) -> str | None:
    order = session.get(Order, order_id)
    return None if order is None else order.status


def order_view(session: Session, order_id: str, site_key: bytes | None, buyers: BuyerBox | None) -> OrderView | None:
    order = session.get(Order, order_id)
    if order is None:
        return None
    view = OrderView(
        id=order.id, status=order.status, item_name=order.item_name, sku=order.sku, quantity=order.quantity,
        unit_price_cents=order.unit_price_cents, discount_cents=order.discount_cents, total_cents=order.total_cents,
        currency=order.currency, buyer_account=_account(order, buyers), created_at=order.created_at,
        decided_at=order.decided_at, public_reason=order.public_reason if order.status == "rejected" else None,
        category=order.category, plugin_extras=dict((order.extras or {}).get("plugins") or {}),
    )
    if order.status == "delivered" and order.delivery_sealed:
        view.card_keys, view.delivery_unavailable = _unseal(order.delivery_sealed, site_key, order.id)
    if order.status == "pending_payment":
        view.payment = payment_view(order.payment)
    return view


def payment_view(data: Any, now: datetime | None = None) -> PaymentView | None:
    """The pay step of an order, or None when what the row holds is not a usable payment."""
    if not isinstance(data, dict):
        return None
    url, expires = str(data.get("pay_url") or ""), _instant(data.get("expires_at"))
    if not url.startswith(("https://", "http://")) or expires is None:
        return None
    try:
        amount = int(data.get("amount_cents"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    left = int((expires - (now or datetime.now(timezone.utc))).total_seconds())
    return PaymentView(pay_url=url, qr=qr_svg(str(data.get("qr") or url)), amount_cents=amount,
                       currency=str(data.get("currency") or "CNY")[:3], expires_at=expires, seconds_left=max(left, 0))


def _instant(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _account(order: Order, buyers: BuyerBox | None) -> str | None:
    """The account the buyer gave (sealed at rest); None when the site key cannot open it."""
    if buyers is None:
        return None
    try:
        return buyers.open(order.id, order.buyer_sealed).account
    except ValueError:
        log.error("buyer data of order %s could not be opened with the site key", order.id)
        return None


def _unseal(sealed: str, site_key: bytes | None, order_id: str) -> tuple[list[dict[str, str]], bool]:
    if site_key is None:
        return [], True
    try:
        data: Any = open_sealed(site_key, sealed)
    except Exception:  # wrong key or damaged row: say so, never show garbage
        log.error("delivery of order %s could not be opened with the site key", order_id)
        return [], True
    keys = data.get("card_keys", []) if isinstance(data, dict) else []
    return [{"serial": str(k.get("serial", "")), "secret": str(k.get("secret", ""))} for k in keys if isinstance(k, dict)], False
