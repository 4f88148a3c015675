"""Payouts: the site asks to withdraw from its available balance; HQ approves with the transfer reference.

Available = the site's ledger balance minus payouts still waiting (amount and
fee). A request below the minimum payout, or above what is available with
the fee, is refused. Approval posts two entries (the transfer and its fee)
in the same transaction that records the reference; a rejection posts none.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from hq import audit
from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.ledger import accounts, entries, events, rates
from hq.ledger.entries import Entry, Line
from hq.models import Payout

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from hq.service import HQ

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}\Z")
TRANSFER_REF = re.compile(r"^[A-Za-z0-9._:/#-]{1,128}\Z")


def pending_fen(conn: "Connection", site_id: str) -> int:
    total = conn.scalar(select(func.coalesce(func.sum(Payout.amount_fen + Payout.fee_fen), 0))
                        .where(Payout.site_id == site_id, Payout.status == "requested"))
    return int(total or 0)


def balance(hq: "HQ", site_id: str) -> dict[str, Any]:
    """The site's balance, what payouts still waiting hold, what it may withdraw, and today's payout terms."""
    with hq.read() as conn:
        if not events.licence_terms(conn, [site_id]):
            raise ApiError(404, "not_found", f"site {site_id!r} has no licence")
        total, held = accounts.site_balance(conn, site_id), pending_fen(conn, site_id)
        in_force = rates.in_force(conn, utcnow())
    return {"site": site_id, "balance_fen": total, "pending_fen": held, "available_fen": total - held,
            "min_payout_fen": in_force.min_payout(), "payout_fee_fen": in_force.payout_fee()}


def request(hq: "HQ", site_id: str, request_id: str, amount_fen: int) -> dict[str, Any]:
    """Ask for `amount_fen` to be transferred; the same request_id again answers the first request."""
    if not REQUEST_ID.match(request_id):
        raise ApiError(422, "invalid_request", "request_id: 1-64 letters, digits, '.', '_', ':' or '-'")
    with hq.session() as s:
        conn = s.connection()
        _lock_site(s, site_id)  # before the look-up: a resend arriving meanwhile finds the first request
        known = s.scalar(select(Payout).where(Payout.site_id == site_id, Payout.request_id == request_id))
        if known is not None:
            if int(known.amount_fen) != amount_fen:
                raise ApiError(409, "request_conflict", f"payout request {request_id!r} was made for another amount")
            return payout_json(known)
        in_force = rates.in_force(conn, utcnow())
        fee, minimum = in_force.payout_fee(), in_force.min_payout()
        if amount_fen < max(minimum, 1):
            raise ApiError(409, "below_minimum", f"the minimum payout is {minimum} fen")
        available = accounts.site_balance(conn, site_id) - pending_fen(conn, site_id)
        if amount_fen + fee > available:
            raise ApiError(409, "insufficient_balance",
                           f"{amount_fen} fen and the {fee} fen fee exceed the available {available} fen")
        row = Payout(site_id=site_id, request_id=request_id, amount_fen=amount_fen, fee_fen=fee, status="requested",
                     requested_at=utcnow())
        s.add(row)
        s.flush()
        audit.record(s, "site", "settlement.payout.request", site_id, payout=row.id, amount_fen=amount_fen,
                     fee_fen=fee)
        return payout_json(row)


def _lock_site(s: "Session", site_id: str) -> None:
    """Serialise a site's payout requests (PostgreSQL row lock; SQLite writes one at a time anyway)."""
    from hq.models import Site

    s.scalar(select(Site.id).where(Site.id == site_id).with_for_update())


def approve(hq: "HQ", operator: str, payout_id: int, transfer_ref: str, at: "datetime | None" = None) -> dict[str, Any]:
    """Record the transfer: post the payout and its fee from the site's account; once."""
    if not TRANSFER_REF.match(transfer_ref):
        raise ApiError(422, "invalid_request", "transfer_ref: 1-128 letters, digits or . _ : / # -")
    with hq.session() as s:
        row = _waiting(s, payout_id)
        conn = s.connection()
        balance_now = accounts.site_balance(conn, row.site_id)
        if int(row.amount_fen + row.fee_fen) > balance_now:
            raise ApiError(409, "insufficient_balance", f"the site's balance is {balance_now} fen now; reject the payout")
        now, site = at or utcnow(), accounts.site_account(row.site_id)
        amount, fee, source = int(row.amount_fen), int(row.fee_fen), str(row.id)
        posted = [Entry(row.site_id, "payout", source, now, (Line(site, "payout", amount),
                                                             Line(accounts.BANK, "payout", -amount)),
                        memo=transfer_ref, operator=operator)]
        if fee:
            posted.append(Entry(row.site_id, "payout_fee", source, now, (Line(site, "payout_fee", fee),
                                                                        Line(accounts.FEES, "payout_fee", -fee)),
                                memo=transfer_ref, operator=operator))
        entries.post(conn, posted)
        row.status, row.decided_at, row.decided_by, row.transfer_ref = "approved", now, operator, transfer_ref
        audit.record(s, operator, "settlement.payout.approve", row.site_id, payout=row.id, transfer_ref=transfer_ref)
        return payout_json(row)


def reject(hq: "HQ", operator: str, payout_id: int, reason: str) -> dict[str, Any]:
    events.check_reason(reason)
    with hq.session() as s:
        row = _waiting(s, payout_id)
        row.status, row.decided_at, row.decided_by, row.reason = "rejected", utcnow(), operator, reason
        audit.record(s, operator, "settlement.payout.reject", row.site_id, payout=row.id, reason=reason)
        return payout_json(row)


def _waiting(s: "Session", payout_id: int) -> Payout:
    row = s.scalar(select(Payout).where(Payout.id == payout_id).with_for_update())
    if row is None:
        raise ApiError(404, "not_found", f"payout {payout_id} does not exist")
    if row.status != "requested":
        raise ApiError(409, "already_decided", f"payout {payout_id} is already {row.status}")
    return row


def list_payouts(hq: "HQ", site_id: str | None = None, status: str | None = None,
                 limit: int = 200) -> list[dict[str, Any]]:
    with hq.read() as conn:  # plain rows: the fleet page reads this on every load
        query = select(Payout).order_by(Payout.id.desc()).limit(limit)
        if site_id:
            query = query.where(Payout.site_id == site_id)
        if status:
            query = query.where(Payout.status == status)
        return [payout_json(r) for r in conn.execute(query)]


def payout_json(row: Payout) -> dict[str, Any]:
    return {"id": row.id, "site": row.site_id, "request_id": row.request_id, "amount_fen": int(row.amount_fen),
            "fee_fen": int(row.fee_fen), "status": row.status, "requested_at": iso(row.requested_at),
            "decided_at": iso(row.decided_at), "decided_by": row.decided_by, "transfer_ref": row.transfer_ref,
            "reason": row.reason}
