"""From an approved order to a paid, fulfilled one: payments, notifications, expiry.

With a gateway enabled, approval no longer delivers: the order becomes
`pending_payment`, its card keys are *reserved* (status `reserved`, tied to the
order, so nobody else buys them and nobody gets them yet) and a payment is
opened at the gateway. Only a verified notification (or the gateway's answer to
HQ's query) whose amount and currency equal the order's turns the reserved keys
sold, the order `delivered` and posts it to the ledger, in one transaction. A
different amount or currency holds the order for review. A replay changes
nothing. A verified notification for an order HQ has not seen is kept
(`waiting`) and applied when the order arrives: `out_trade_no` is derived from
(site, order id), so the order that arrives later has the same one. Unpaid
payments expire after `payment_expiry_seconds`: the keys go back on sale.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping

from sqlalchemy import insert, select, update

from hq import catalog
from hq.clock import aware, iso, utcnow
from hq.ledger import events as ledger
from hq.metrics import metrics
from hq.models import CardKey, CatalogItem, Order, Payment, PaymentNotice
from hq.payments import application_fee, gateways
from hq.payments.contract import Forged, Gateway, GatewayError, Notice, PayLink, PaymentRequest

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hq.service import HQ

log = logging.getLogger("hq.payments")
EXPIRE_BATCH = 200
FEE_PREFIX = "f"  # applicants' base fees (hq.payments.application_fee.PREFIX); orders' trades start with `k`
GIVE_UP_QUERY = timedelta(hours=1)  # past expiry by this much, an unreachable gateway no longer keeps the keys


class UnknownGateway(Forged):
    """A notification for a gateway HQ has not configured."""


def out_trade_no(site_id: str, order_id: str) -> str:
    """The merchant order number at the gateway: the same for the same (site, order) on every HQ worker."""
    return "k" + hashlib.sha256(f"{site_id}/{order_id}".encode()).hexdigest()[:31]


@dataclass(frozen=True)
class Payable:
    order_pk: int
    site_id: str
    order_id: str
    sku: str
    quantity: int
    amount_cents: int
    currency: str


def payment_json(row: Any) -> dict[str, Any]:
    """What the site is told about a payment (no credentials: the link is what the buyer opens)."""
    return {"gateway": row.gateway, "pay_url": row.pay_url, "qr": row.qr_content, "amount_cents": int(row.amount_cents),
            "currency": row.currency, "expires_at": iso(row.expires_at), "status": row.status}


def payment_request(hq: "HQ", gateway: Gateway, p: Payable) -> PaymentRequest:
    """What HQ asks the gateway for an order: the same every time for the same order (a link made before the
    order's transaction is the link it would have made inside)."""
    base = hq.settings.public_url.rstrip("/")
    back = (hq.settings.payer_url or base).rstrip("/")
    return PaymentRequest(
        out_trade_no=out_trade_no(p.site_id, p.order_id), amount_cents=p.amount_cents, currency=p.currency,
        subject=f"{p.sku} x{p.quantity}", notify_url=f"{base}/v1/payments/{gateway.name}/notify",
        return_url=f"{back}/v1/payments/return")


def create_links(hq: "HQ", gateway: Gateway, payables: list[Payable]) -> dict[str, PayLink]:
    """Pay links by out_trade_no, asked of the gateway while no transaction is open (GatewayError as it raises)."""
    return {r.out_trade_no: gateway.create(r) for r in (payment_request(hq, gateway, p) for p in payables)}


@dataclass(frozen=True)
class Beforehand:
    """Pay links asked of a gateway before a transaction opened, and the gateway that made them: the transaction
    uses them only if the gateway it finds active is that same one (else it asks inside, as before)."""
    gateway: Gateway | None = None
    links: Mapping[str, PayLink] | None = None

    def links_for(self, gateway: Gateway) -> Mapping[str, PayLink] | None:
        return self.links if gateway is self.gateway else None


NOTHING_BEFOREHAND = Beforehand()


def remote_gateway(hq: "HQ", conn: "Connection") -> Gateway | None:
    """The active gateway if it makes links over the network (`creates_remotely`: Alipay, WeChat Pay), else None:
    only those are worth asking before a transaction opens."""
    gateway = gateways.active(hq, conn)
    return gateway if gateway is not None and getattr(gateway, "creates_remotely", False) else None


def ask_beforehand(hq: "HQ", gateway: Gateway | None, payables: list[Payable]) -> Beforehand:
    """Links for `payables` asked now, while the caller holds no transaction (GatewayError as it raises)."""
    if gateway is None or not payables:
        return NOTHING_BEFOREHAND
    return Beforehand(gateway, create_links(hq, gateway, payables))


def open_payments(hq: "HQ", conn: "Connection", gateway: Gateway, payables: list[Payable],
                  now: datetime, links: Mapping[str, PayLink] | None = None) -> dict[int, dict[str, Any]]:
    """Open a payment for every payable order in the caller's transaction; payment JSON by order pk. A link in
    `links` (made by create_links before the transaction) is used as it is; any other is asked for here."""
    if not payables:
        return {}
    expires = now + timedelta(seconds=hq.settings.payment_expiry_seconds)
    rows = []
    for p in payables:
        request = payment_request(hq, gateway, p)
        trade = request.out_trade_no
        link = (links or {}).get(trade) or gateway.create(request)
        rows.append({"order_pk": p.order_pk, "out_trade_no": trade, "gateway": gateway.name,
                     "amount_cents": p.amount_cents, "currency": p.currency, "status": "pending",
                     "pay_url": link.pay_url, "qr_content": link.qr_content, "created_at": now, "expires_at": expires})
    conn.execute(insert(Payment), rows)
    settled = _apply_waiting(conn, [r["out_trade_no"] for r in rows], now)
    return {r["order_pk"]: {**payment_json(_Row(r)), **({"status": "settled"} if r["out_trade_no"] in settled else {})}
            for r in rows}


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def payment_of(conn: "Connection", order_pk: int) -> dict[str, Any] | None:
    row = conn.execute(select(Payment).where(Payment.order_pk == order_pk)).first()
    return None if row is None else payment_json(row)


# -- notifications --------------------------------------------------------------

def notify(hq: "HQ", gateway_name: str, params: Mapping[str, str]) -> str:
    """Verify and apply a gateway's notification; the outcome (raises Forged, counted, when it does not verify)."""
    counted = metrics()
    with hq.read() as conn:
        gateway = gateways.named(hq, conn, gateway_name)
    if gateway is None:
        counted.payment_notice(gateway_name, "forged")
        raise UnknownGateway(f"no gateway {gateway_name!r} is configured")
    try:
        notice = gateway.verify(params)
    except Forged:
        counted.payment_notice(gateway.name, "forged")
        raise
    if notice.paid and notice.out_trade_no.startswith(FEE_PREFIX):  # an applicant's base fee
        outcome = application_fee.settle(hq, gateway.name, notice)
    else:
        outcome = apply(hq, gateway.name, notice) if notice.paid else "unpaid"
    counted.payment_notice(gateway.name, outcome)
    return outcome


def apply(hq: "HQ", gateway_name: str, notice: Notice) -> str:
    """Apply a verified payment statement once: applied | duplicate | held | waiting."""
    now = utcnow()
    with hq.connection() as conn:
        pay = conn.execute(select(Payment).where(Payment.out_trade_no == notice.out_trade_no)
                           .with_for_update()).first()
        if pay is None:
            outcome = _keep_waiting(conn, gateway_name, notice, now)
        else:
            outcome = _settle(conn, pay, notice, now)
            conn.execute(insert(PaymentNotice), [_notice_row(gateway_name, notice, now, outcome)])
    return outcome


def _notice_row(gateway: str, notice: Notice, now: datetime, outcome: str) -> dict[str, Any]:
    return {"gateway": gateway, "out_trade_no": notice.out_trade_no, "trade_no": notice.trade_no,
            "amount_cents": notice.amount_cents, "currency": notice.currency, "received_at": now,
            "outcome": outcome, "applied_at": None if outcome == "waiting" else now}


def _keep_waiting(conn: "Connection", gateway: str, notice: Notice, now: datetime) -> str:
    known = conn.execute(select(PaymentNotice.id).where(PaymentNotice.out_trade_no == notice.out_trade_no,
                                                        PaymentNotice.trade_no == notice.trade_no)).first()
    if known is not None:
        return "duplicate"
    conn.execute(insert(PaymentNotice), [_notice_row(gateway, notice, now, "waiting")])
    return "waiting"


def _apply_waiting(conn: "Connection", trades: list[str], now: datetime) -> set[str]:
    """Notifications that arrived before their order: apply them now, in the order's transaction.

    Returns the trades they settled (the caller's view of those orders is stale)."""
    waiting = list(conn.execute(select(PaymentNotice).where(PaymentNotice.out_trade_no.in_(trades),
                                                            PaymentNotice.outcome == "waiting")
                                .order_by(PaymentNotice.id)))
    for n in waiting:
        pay = conn.execute(select(Payment).where(Payment.out_trade_no == n.out_trade_no)).first()
        notice = Notice(n.out_trade_no, n.trade_no, int(n.amount_cents), n.currency, True)
        outcome = _settle(conn, pay, notice, now)
        conn.execute(update(PaymentNotice).where(PaymentNotice.id == n.id).values(outcome=outcome, applied_at=now))
        metrics().payment_notice(n.gateway, outcome)
    return {n.out_trade_no for n in waiting}


def _settle(conn: "Connection", pay: Any, notice: Notice, now: datetime) -> str:
    if pay.status not in ("pending", "expired"):  # paid, held, refunding, refunded: already settled once
        return "duplicate"
    order = conn.execute(select(Order).where(Order.id == pay.order_pk)).first()
    if notice.amount_cents != int(pay.amount_cents) or notice.currency != pay.currency:
        return _hold(conn, pay, order, "payment_mismatch", notice, now)
    if pay.status == "expired" and not _reserve_again(conn, order):
        return _hold(conn, pay, order, "paid_after_expiry", notice, now)
    _deliver(conn, pay, order, notice, now)
    return "applied"


def _hold(conn: "Connection", pay: Any, order: Any, reason: str, notice: Notice, now: datetime) -> str:
    """Money arrived that does not fit the order: an operator decides (reserved keys stay reserved)."""
    conn.execute(update(Payment).where(Payment.id == pay.id)
                 .values(status="held", trade_no=notice.trade_no, paid_at=now))  # the money came, if not as expected
    conn.execute(update(Order).where(Order.id == order.id)
                 .values(status="review", reasons=[*order.reasons, reason], decided_at=now))
    log.warning("payment of order %s held for review: %s", order.hq_order_id, reason)
    return "held"


def _reserve_again(conn: "Connection", order: Any) -> bool:
    """A payment that arrived after expiry: take keys again if there still are enough."""
    kind = conn.execute(select(CatalogItem.stock_kind).where(CatalogItem.sku == order.sku)).scalar()
    if kind != "card_key":
        return True
    return reserve(conn, order.sku, order.quantity, order.id)


def reserve(conn: "Connection", sku: str, quantity: int, order_pk: int) -> bool:
    """Reserve `quantity` available keys for the order (locked, skipping keys others hold); False if too few."""
    ids = list(conn.execute(select(CardKey.id).where(CardKey.sku == sku, CardKey.status == "available")
                            .order_by(CardKey.id).limit(quantity).with_for_update(skip_locked=True)).scalars())
    if len(ids) < quantity:
        return False
    done = conn.execute(update(CardKey).where(CardKey.id.in_(ids), CardKey.status == "available")
                        .values(status="reserved", order_pk=order_pk)).rowcount
    if done != quantity:
        raise RuntimeError("card-key reservation raced; transaction rolled back")
    return True


def _deliver(conn: "Connection", pay: Any, order: Any, notice: Notice, now: datetime) -> None:
    item = conn.execute(select(CatalogItem.category, CatalogItem.stock_kind)
                        .where(CatalogItem.sku == order.sku)).first()
    sold = conn.execute(update(CardKey).where(CardKey.order_pk == order.id, CardKey.status == "reserved")
                        .values(status="sold", sold_at=now)).rowcount
    if item is not None and item.stock_kind == "card_key" and sold != order.quantity:
        raise RuntimeError(f"order {order.hq_order_id} had {sold} reserved keys for {order.quantity}")
    conn.execute(update(Payment).where(Payment.id == pay.id)
                 .values(status="paid", paid_at=now, trade_no=notice.trade_no))
    conn.execute(update(Order).where(Order.id == order.id).values(status="delivered", decided_at=now))
    ledger.order_paid(conn, [ledger.paid_order(order, item.category if item else None)], now)


# -- lost notifications and expiry ----------------------------------------------------

def sweep(hq: "HQ", now: datetime | None = None) -> dict[str, int]:
    """Payments past their expiry: ask the gateway first (a lost notification), else expire them."""
    now = now or utcnow()
    with hq.read() as conn:
        due = list(conn.execute(select(Payment.out_trade_no, Payment.gateway, Payment.expires_at)
                                .where(Payment.status == "pending", Payment.expires_at <= now)
                                .order_by(Payment.expires_at).limit(EXPIRE_BATCH)))
        opened = {g: gateways.named(hq, conn, g) for g in {d.gateway for d in due}}
    found = expired = 0
    for d in due:
        gateway = opened.get(d.gateway)
        try:
            notice = gateway.query(d.out_trade_no) if gateway is not None else None
        except (GatewayError, Forged) as exc:
            log.warning("payment query failed: %s", exc)
            if now - aware(d.expires_at) < GIVE_UP_QUERY:
                continue  # the gateway may still say it was paid: keep the keys a while longer
            notice = None
        if notice is not None and notice.paid:
            found += apply(hq, d.gateway, notice) == "applied"
            metrics().payment_notice(d.gateway, "queried")
        else:
            expired += expire(hq, d.out_trade_no, now)
    return {"found_paid": found, "expired": expired}


def expire(hq: "HQ", trade: str, now: datetime) -> int:
    """Expire one unpaid payment: the order `expired`, its reserved keys back on sale (1 if it changed)."""
    with hq.connection() as conn:
        pay = conn.execute(select(Payment).where(Payment.out_trade_no == trade, Payment.status == "pending")
                           .with_for_update()).first()
        if pay is None:
            return 0  # paid (or expired) meanwhile
        order = conn.execute(select(Order).where(Order.id == pay.order_pk)).first()
        conn.execute(update(Payment).where(Payment.id == pay.id).values(status="expired"))
        conn.execute(update(Order).where(Order.id == order.id)
                     .values(status="expired", reasons=[*order.reasons, "payment_expired"], decided_at=now))
        if release_keys(conn, order.id):
            from sqlalchemy.orm import Session

            with Session(bind=conn) as s:  # the catalog's stock version, so sites see the keys again
                catalog.bump(s, order.sku)
                s.flush()
    return 1


def release_keys(conn: "Connection", order_pk: int) -> int:
    """Put an order's reserved keys back on sale; how many."""
    return conn.execute(update(CardKey).where(CardKey.order_pk == order_pk, CardKey.status == "reserved")
                        .values(status="available", order_pk=None)).rowcount or 0


# -- an operator on a held payment ----------------------------------------------------

def held_payment(conn: "Connection", order_pk: int) -> Any:
    return conn.execute(select(Payment).where(Payment.order_pk == order_pk, Payment.status == "held")).first()


def accept_held(conn: "Connection", pay: Any, now: datetime) -> bool:
    """Deliver an order whose payment was held (the operator accepts it); False when no keys are left."""
    order = conn.execute(select(Order).where(Order.id == pay.order_pk)).first()
    kind = conn.execute(select(CatalogItem.stock_kind).where(CatalogItem.sku == order.sku)).scalar()
    reserved = conn.execute(select(CardKey.id).where(CardKey.order_pk == order.id, CardKey.status == "reserved")).all()
    if kind == "card_key" and len(reserved) < order.quantity and not reserve(conn, order.sku, order.quantity, order.id):
        return False
    _deliver(conn, pay, order, Notice(pay.out_trade_no, pay.trade_no or "", int(pay.amount_cents), pay.currency, True),
             now)
    return True
