"""A buyer's complaint about an order, filed on its order page with the order's secret (the route: storefront.shop).

The secret is checked like an order lookup (the same per-client and per-order throttles), so only
whoever holds it can complain; one complaint per order. The text (1..MAX_TEXT characters) waits in
`complaints` (the agent's outbox, send_state `pending`) until the agent has passed it to HQ, which
counts it in the site's grade (docs/partners.md). Every refusal is one line on the page; nothing is stored.
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from sitedb.tables import complaints
from storefront.orders import check_password
from storefront.web import client_ip, shop_of

MAX_TEXT = 2000  # characters: HQ takes the same (hq.complaints.MAX_TEXT)


class Refused(Exception):
    """A complaint the page refuses: the message key and the HTTP status."""

    def __init__(self, key: str, status: int) -> None:
        super().__init__(key)
        self.key, self.status = key, status


def file_complaint(request: Request, order_id: str | None, text: str, password: str) -> str:
    """Check and store one complaint; returns its id, or raises Refused having stored nothing."""
    shop = shop_of(request)
    client = client_ip(request)
    words = text.strip()
    if not shop.limits.lookup_ip.hit(client) or (order_id and not shop.limits.lookup.allowed(client, order_id)):
        raise Refused("lookup.limited", 429)
    if not words:
        raise Refused("complaint.empty", 422)
    if len(words) > MAX_TEXT:
        raise Refused("complaint.too_long", 413)
    if order_id is None or not password or len(password) > 128:
        raise Refused("complaint.wrong_secret", 403)
    with shop.sessions() as session:
        ok = check_password(session, order_id, password)
    if not ok:
        shop.limits.lookup.failed(client, order_id)
        raise Refused("complaint.wrong_secret", 403)
    shop.limits.lookup.succeeded(client, order_id)
    row_id = str(uuid.uuid4())
    try:
        with shop.sessions.begin() as session:
            if session.execute(select(complaints.c.id).where(complaints.c.order_id == order_id)).first():
                raise Refused("complaint.duplicate", 409)
            session.execute(insert(complaints).values(id=row_id, order_id=order_id, text=words, send_state="pending"))
    except IntegrityError:  # a second form sent at the same moment: the first one stands
        raise Refused("complaint.duplicate", 409) from None
    return row_id
