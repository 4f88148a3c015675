"""The money events and the entries each writes (docs/settlement.md has the table).

`order_paid` is the one function the fulfilment path calls, in the
transaction that delivers the order: today an order counts as paid when HQ
fulfils it (the test-mode checkout); a payment gateway will call the same
function once the buyer's payment is confirmed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import bindparam, select

from hq import audit
from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.ledger import accounts, entries, rates
from hq.ledger.entries import Entry, Line
from hq.models import Licence, Site
from hq.amounts import charge_cents
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hq.service import HQ

MAX_ADJUSTMENT = 10**12
REVERSIBLE = ("base_fee", "adjustment")


@dataclass(frozen=True)
class PaidOrder:
    site_id: str
    hq_order_id: str
    order_id: str
    quantity: int
    unit_price_cents: int
    hq_price_cents: int | None
    category: str | None
    total_cents: int | None = None  # what the buyer paid when the site took a discount off; None: unit × quantity


def paid_order(row: Any, category: str | None) -> PaidOrder:
    """A paid order as the ledger posts it, from an HQ order row (ORM object or result row)."""
    return PaidOrder(row.site_id, row.hq_order_id, row.order_id, row.quantity, int(row.unit_price_cents),
                     None if row.hq_price_cents is None else int(row.hq_price_cents), category,
                     None if row.total_cents is None else int(row.total_cents))


@dataclass(frozen=True)
class Terms:
    """What a site's current licence says about money: its tier and its own share rate."""

    tier: str
    share_bps: int


_TERMS = (select(Site.id, Licence.tier, Licence.revenue_share_bps).join(Licence, Licence.jti == Site.current_jti)
          .where(Site.id.in_(bindparam("sites", expanding=True))))  # built once: every paid order batch reads it


def licence_terms(conn: "Connection", site_ids: Iterable[str]) -> dict[str, Terms]:
    rows = conn.execute(_TERMS, {"sites": sorted(set(site_ids))})
    return {site: Terms(tier, int(bps)) for site, tier, bps in rows}


def order_entry(order: PaidOrder, in_force: rates.Rates, terms: Terms, at: datetime) -> Entry:
    """Gross (what the buyer paid) to the site; HQ's cost and HQ's share from the site to HQ.

    A site's discount lowers the gross only: HQ's cost stays HQ's price × quantity, so a discount below HQ's
    price is the site's own loss, on the site's account, and the entry still balances."""
    gross = charge_cents(order.unit_price_cents, order.quantity, order.total_cents)
    cost = (order.hq_price_cents or 0) * order.quantity
    share = rates.share_fen(gross, in_force.share_bps(terms.tier, order.category, terms.share_bps))
    site = accounts.site_account(order.site_id)
    return Entry(order.site_id, "order", order.hq_order_id, at, (
        Line(accounts.CLEARING, "gross", gross), Line(site, "gross", -gross),
        Line(site, "hq_cost", cost), Line(accounts.COST, "hq_cost", -cost),
        Line(site, "hq_share", share), Line(accounts.SHARE, "hq_share", -share),
    ), memo=order.order_id)


def order_paid(conn: "Connection", orders: list[PaidOrder], at: datetime | None = None) -> None:
    """Post every paid order in the caller's transaction (one entry each; a replay posts nothing)."""
    if not orders:
        return
    at = at or utcnow()
    in_force = rates.in_force(conn, at)
    terms = licence_terms(conn, (o.site_id for o in orders))
    entries.post(conn, [order_entry(o, in_force, terms[o.site_id], at) for o in orders])


def refund(hq: "HQ", operator: str, hq_order_id: str, reason: str, at: datetime | None = None) -> dict[str, Any]:
    """Reverse a paid order's entry (refund or cancel after payment); once only."""
    check_reason(reason)
    with hq.session() as s:
        conn = s.connection()
        original = entries.find(conn, "order", hq_order_id)
        if original is None:
            raise ApiError(409, "not_paid", f"order {hq_order_id!r} has no paid entry in the ledger to refund")
        if entries.find(conn, "refund", hq_order_id) is not None:
            raise ApiError(409, "already_refunded", f"order {hq_order_id!r} was already refunded")
        entry = entries.reversal(conn, original, "refund", hq_order_id, at or utcnow(), operator, reason)
        entry_id = entries.post(conn, [entry])[0]
        audit.record(s, operator, "settlement.refund", original.site_id, hq_order_id=hq_order_id, reason=reason)
        return entry_json(entry, entry_id)


def base_fee(hq: "HQ", operator: str, site_id: str, year: int, at: datetime | None = None) -> dict[str, Any]:
    """Charge the year's base fee at the rate of the site's tier in force today; once per site and year."""
    if not 2000 <= year <= 2199:
        raise InvalidInput("year must be from 2000 to 2199")
    at = at or utcnow()
    with hq.session() as s:
        conn = s.connection()
        terms = _terms_of(conn, site_id)
        source = f"{site_id}:{year}"
        if entries.find(conn, "base_fee", source) is not None:
            raise ApiError(409, "already_charged", f"the {year} base fee of {site_id!r} is already charged")
        fee = rates.in_force(conn, at).base_fee(terms.tier)
        site = accounts.site_account(site_id)
        entry = Entry(site_id, "base_fee", source, at, (Line(site, "base_fee", fee), Line(accounts.FEES, "base_fee", -fee)),
                      memo=f"base fee {year} ({terms.tier})", operator=operator)
        entry_id = entries.post(conn, [entry])[0]
        audit.record(s, operator, "settlement.base_fee", site_id, year=year, fee_fen=fee)
        return entry_json(entry, entry_id)


def charge_due_base_fees(hq: "HQ", at: datetime | None = None) -> list[dict[str, Any]]:
    """The year's base fee for every site whose licence is in force and that has not paid this year's yet.

    HQ's housekeeping calls this when `auto_base_fee` is on; a fee already charged
    (by hand or by an earlier round) is never charged again: the entry's source is `site:year`.
    """
    at = at or utcnow()
    year = at.year
    with hq.read() as conn:
        due = [site for site, in conn.execute(
            select(Site.id).join(Licence, Licence.jti == Site.current_jti)
            .where(Site.status != "revoked", Licence.revoked_at.is_(None), Licence.expires_at > at)
            .order_by(Site.id)) if entries.find(conn, "base_fee", f"{site}:{year}") is None]
    charged = []
    for site in due:
        try:
            charged.append(base_fee(hq, "hq:auto", site, year, at))
        except ApiError as exc:
            if exc.code != "already_charged":  # charged meanwhile by an operator: nothing to do
                raise
    return charged


def adjust(hq: "HQ", operator: str, site_id: str, amount_fen: int, reason: str,
           at: datetime | None = None) -> dict[str, Any]:
    """An operator's correction: positive credits the site, negative debits it; the reason is kept."""
    check_reason(reason)
    if isinstance(amount_fen, bool) or amount_fen == 0 or abs(amount_fen) > MAX_ADJUSTMENT:
        raise InvalidInput(f"amount must be a non-zero whole number of fen up to {MAX_ADJUSTMENT} either way")
    with hq.session() as s:
        entry = post_adjustment(s.connection(), operator, site_id, amount_fen, reason, at or utcnow())
        audit.record(s, operator, "settlement.adjust", site_id, amount_fen=amount_fen, reason=reason)
        return entry


def post_adjustment(conn: "Connection", operator: str, site_id: str, amount_fen: int, reason: str,
                    at: datetime) -> dict[str, Any]:
    _terms_of(conn, site_id)
    site = accounts.site_account(site_id)
    entry = Entry(site_id, "adjustment", uuid.uuid4().hex, at, (
        Line(accounts.ADJUSTMENTS, "adjustment", amount_fen), Line(site, "adjustment", -amount_fen)),
        memo=reason, operator=operator)
    return entry_json(entry, entries.post(conn, [entry])[0])


def reverse(hq: "HQ", operator: str, entry_id: int, reason: str) -> dict[str, Any]:
    """Undo a base fee or an adjustment posted by mistake (orders are refunded, payouts stand)."""
    check_reason(reason)
    with hq.session() as s:
        conn = s.connection()
        original = entries.get(conn, entry_id)
        if original is None:
            raise ApiError(404, "not_found", f"ledger entry {entry_id} does not exist")
        if original.kind not in REVERSIBLE:
            raise ApiError(409, "not_reversible", f"a {original.kind} entry cannot be reversed here"
                           + ("; refund the order instead" if original.kind == "order" else ""))
        if entries.find(conn, "reversal", str(entry_id)) is not None:
            raise ApiError(409, "already_reversed", f"ledger entry {entry_id} was already reversed")
        entry = entries.reversal(conn, original, "reversal", str(entry_id), utcnow(), operator, reason)
        new_id = entries.post(conn, [entry])[0]
        audit.record(s, operator, "settlement.reverse", original.site_id, entry_id=entry_id, reason=reason)
        return entry_json(entry, new_id)


def _terms_of(conn: "Connection", site_id: str) -> Terms:
    terms = licence_terms(conn, [site_id]).get(site_id)
    if terms is None:
        raise ApiError(404, "not_found", f"site {site_id!r} has no licence")
    return terms


def check_reason(text: str, name: str = "reason") -> None:
    if not text.strip(" ") or len(text) > 500 or any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in text):
        raise InvalidInput(f"{name} must be one line of 1-500 characters")


def entry_json(entry: Entry, entry_id: int | None) -> dict[str, Any]:
    site = accounts.site_account(entry.site_id)
    return {"id": entry_id, "site": entry.site_id, "kind": entry.kind, "source": entry.source,
            "posted_at": iso(entry.posted_at), "memo": entry.memo, "operator": entry.operator,
            "reverses": entry.reverses_id,
            "site_fen": -sum(x.amount_fen for x in entry.lines if x.account == site),
            "lines": [{"account": x.account, "role": x.role, "amount_fen": x.amount_fen} for x in entry.lines]}
