"""The site's side of payouts: the finance role's request, left in the site database for the agent.

The storefront never calls HQ: a request is written to `payout_requests`
(send_state `pending`) under an id made here, which HQ keeps as its
request_id, so the agent may send it again without a second payout. The
balance, minimum and fee shown are HQ's last word (`site_state.payout_terms`,
copied by the agent); HQ applies its own rules again when the request arrives.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from sitedb.tables import audit_log, payout_requests, site_state, utcnow

YUAN = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?\Z")  # up to ¥9,999,999,999.99


class PayoutRefused(ValueError):
    """A request the site does not send: `str(exc)` is an i18n key naming why."""


def parse_yuan(text: str) -> int:
    """`12.5` → 1250 fen; anything but a plain amount in yuan with at most two decimals is refused."""
    text = text.strip().replace(",", "").removeprefix("¥")
    if not YUAN.match(text):
        raise PayoutRefused("payout.err_amount")
    fen = int(Decimal(text) * 100)
    if fen < 1:
        raise PayoutRefused("payout.err_amount")
    return fen


def terms(conn: Connection) -> dict[str, Any] | None:
    """HQ's balance, pending, available, minimum and fee in fen, as the agent last read them; None before that."""
    return conn.scalar(select(site_state.c.payout_terms))


def unsent_fen(conn: Connection, fee_fen: int) -> int:
    """What requests HQ has not yet taken hold (amount and fee): HQ's `available` does not count them yet."""
    t = payout_requests.c
    count, total = conn.execute(select(func.count(), func.coalesce(func.sum(t.amount_fen), 0))
                                .where(t.send_state == "pending")).one()
    return int(total) + int(count) * fee_fen


def request(conn: Connection, amount_text: str, actor: str) -> str:
    """Record a request for the agent to send; its id (HQ's request_id). HQ's stated rules are checked first."""
    fen = parse_yuan(amount_text)
    known = terms(conn)
    if known is None:
        raise PayoutRefused("payout.err_terms")
    fee, minimum = int(known["payout_fee_fen"]), int(known["min_payout_fen"])
    if fen < minimum:
        raise PayoutRefused("payout.err_minimum")
    if fen + fee > int(known["available_fen"]) - unsent_fen(conn, fee):
        raise PayoutRefused("payout.err_available")
    request_id = "p-" + secrets.token_hex(12)
    conn.execute(insert(payout_requests).values(id=request_id, amount_fen=fen, requested_by=actor[:64],
                                                requested_at=utcnow(), send_state="pending"))
    conn.execute(insert(audit_log).values(actor=actor[:64], action="payout_requested", at=utcnow(),
                                          detail={"request": request_id, "amount_fen": fen}))
    return request_id


def listing(conn: Connection, limit: int = 200) -> list[Row[Any]]:
    t = payout_requests.c
    return list(conn.execute(select(payout_requests).order_by(t.requested_at.desc(), t.id).limit(limit)))


def state(row: Row[Any]) -> str:
    """What the page says: HQ's decision first, then where the request is on its way."""
    if row.status:
        return str(row.status)
    return str(row.send_state)
