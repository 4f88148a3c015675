"""The base fee, paid by the applicant through HQ's payment gateway (the stage `base_fee_paid`).

Once the contract is signed the applicant's progress page (or `POST /v1/applications/{number}/pay` with
the secret) opens one payment at the enabled gateway for the base fee of the tier applied for (the
settlement rates in force, hq.ledger.rates). The merchant order number is derived from the application
(`f` + a hash), so asking again gives the same payment. Only the gateway's verified notification (the
same `/v1/payments/{gateway}/notify` as orders, hq.payments.flow) with the same amount and currency
moves the application to `base_fee_paid` — by `gateway:<name>`, audited `application.base_fee_paid` and
mailed; a different amount holds the payment for an operator and moves nothing; a replay changes nothing.
An operator recording the fee (`decide … base_fee_paid`) stays the fallback, audited with their name.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hq import applications, audit
from hq.clock import utcnow
from hq.errors import ApiError
from hq.ledger import rates
from hq.models import Application, ApplicationPayment
from hq.payments import gateways
from hq.payments.contract import Notice, PaymentRequest

if TYPE_CHECKING:
    from hq.service import HQ

PREFIX = "f"  # orders' trade numbers start with `k` (hq.payments.flow.out_trade_no)
DUE = "contract_signed"


def out_trade_no(app_id: int) -> str:
    return PREFIX + hashlib.sha256(f"application/{app_id}".encode()).hexdigest()[:31]


def owns(trade: str) -> bool:
    return trade.startswith(PREFIX)


def pay(hq: "HQ", number: str, secret: str) -> dict[str, Any]:
    """The applicant's payment of the base fee (opened at the gateway the first time; the same one after)."""
    with hq.session() as session:
        row = applications._own(session, number, secret)
        held = session.scalar(select(ApplicationPayment).where(ApplicationPayment.application_id == row.id))
        if held is not None:
            return _out(held)
        if row.stage != DUE:
            raise ApiError(409, "wrong_stage", f"application {number} is at {row.stage}; the base fee is paid "
                                               f"once the contract is signed")
        gateway = gateways.active(hq, session.connection())
        if gateway is None:
            raise ApiError(409, "no_gateway", "HQ takes no payments online now; the operator records the base fee")
        amount = rates.in_force(session.connection(), utcnow()).base_fee(row.tier)
        app_id, tier = row.id, row.tier
    base = hq.settings.public_url.rstrip("/")
    request = PaymentRequest(out_trade_no=out_trade_no(app_id), amount_cents=amount, currency="CNY",
                             subject=f"base fee {number} ({tier})", notify_url=f"{base}/v1/payments/{gateway.name}/notify",
                             return_url=f"{base}/apply/status")
    link = gateway.create(request)  # no transaction open while the gateway answers
    with hq.session() as session:
        held = session.scalar(select(ApplicationPayment).where(ApplicationPayment.application_id == app_id))
        if held is None:
            held = ApplicationPayment(application_id=app_id, out_trade_no=request.out_trade_no, gateway=gateway.name,
                                      amount_cents=amount, currency="CNY", status="pending", pay_url=link.pay_url,
                                      qr_content=link.qr_content, created_at=utcnow())
            session.add(held)
            session.flush()
        return _out(held)


def settle(hq: "HQ", gateway_name: str, notice: Notice) -> str:
    """Apply a verified notification for a base fee: applied | duplicate | held | unknown."""
    with hq.session() as session:
        held = session.scalar(select(ApplicationPayment).where(ApplicationPayment.out_trade_no == notice.out_trade_no)
                              .with_for_update())
        if held is None:
            return "unknown"
        if held.status != "pending":
            return "duplicate"
        held.trade_no, held.paid_at = notice.trade_no, utcnow()
        row = session.scalar(select(Application).where(Application.id == held.application_id).with_for_update())
        assert row is not None
        number = applications.number_of(row.id)
        if notice.amount_cents != held.amount_cents or notice.currency != held.currency or row.stage != DUE:
            held.status = "held"
            audit.record(session, f"gateway:{gateway_name}", "application.fee_held", None, number=number,
                         paid_cents=notice.amount_cents, due_cents=held.amount_cents, stage=row.stage)
            return "held"
        held.status = "paid"
        why = f"base fee paid through {gateway_name} (trade {notice.trade_no})"
        applications._move(session, row, f"gateway:{gateway_name}", "base_fee_paid", why)
        audit.record(session, f"gateway:{gateway_name}", "application.base_fee_paid", None, number=number,
                     amount_cents=held.amount_cents, trade_no=notice.trade_no)
    applications._tell(hq, number)
    return "applied"


def _out(row: ApplicationPayment) -> dict[str, Any]:
    return {"gateway": row.gateway, "pay_url": row.pay_url, "qr": row.qr_content, "amount_cents": int(row.amount_cents),
            "currency": row.currency, "status": row.status}
