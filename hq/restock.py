"""Back-in-stock mail: a buyer asks (through their shop) to be told when a sold-out SKU is back.

The address is kept encrypted (hq.vault, bound to the request id) with a keyed hash for
"one open request per SKU and address"; no plain address is stored. When the SKU has keys
again, each open request is claimed (`notified_at` set where empty) and mailed once, with
an unsubscribe link whose secret is a keyed hash of the request id (nothing to store).
An unsubscribed or mailed request is never mailed again.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from hq.clock import utcnow
from hq.errors import ApiError
from hq.models import CardKey, CatalogItem, RestockRequest
from kitcore import mailaddr

if TYPE_CHECKING:
    from hq.service import HQ

log = logging.getLogger("hq.restock")
PURPOSE_EMAIL, PURPOSE_LINK = "restock-email", "restock-unsubscribe"
BATCH = 200  # requests mailed per round


def subscribe(hq: "HQ", sku: str, email: str) -> dict[str, Any]:
    """Record one request; asking again for the same SKU and address changes nothing."""
    if not mailaddr.valid(email):
        raise ApiError(422, "invalid_request", "email: not an e-mail address")
    with hq.session() as session:
        item = session.get(CatalogItem, sku)
        if item is None or item.deleted or item.stock_kind != "card_key":
            raise ApiError(404, "not_found", f"sku {sku!r} is not a card-key SKU in the catalog")
    index = hq.vault.index(email, PURPOSE_EMAIL)
    try:
        with hq.session() as session:
            row = RestockRequest(sku=sku, email_enc="", email_index=index, created_at=utcnow())
            session.add(row)
            session.flush()
            row.email_enc = hq.vault.encrypt(email.strip(), context=f"restock:{row.id}")
    except IntegrityError:  # an open request for this SKU and address exists
        pass
    return {"sku": sku, "status": "subscribed"}


def link_secret(hq: "HQ", request_id: int) -> str:
    return hq.vault.index(str(request_id), PURPOSE_LINK)[:32]


def unsubscribe(hq: "HQ", request_id: int, secret: str) -> bool:
    """Stop one request; a wrong secret changes nothing (False)."""
    if not hmac.compare_digest(link_secret(hq, request_id), secret):
        return False
    with hq.session() as session:
        session.execute(update(RestockRequest).where(RestockRequest.id == request_id,
                                                     RestockRequest.unsubscribed_at.is_(None))
                        .values(unsubscribed_at=utcnow()))
    return True


def _due(hq: "HQ") -> list[Any]:
    """(id, sku, email_enc) of open requests whose SKU has keys again (read-only: no write lock per round)."""
    r = RestockRequest
    open_ = (r.notified_at.is_(None), r.unsubscribed_at.is_(None))
    with hq.read() as conn:
        if not conn.scalar(select(func.count()).select_from(r).where(*open_)):
            return []
        in_stock = select(CardKey.sku).where(CardKey.status == "available", CardKey.sku == r.sku).exists()
        return list(conn.execute(select(r.id, r.sku, r.email_enc).where(*open_, in_stock).order_by(r.id).limit(BATCH)))


def send_due(hq: "HQ") -> int:
    """Mail every open request whose SKU has keys again, each once; returns how many went out."""
    if not hq.settings.smtp_host:
        return 0  # nowhere to send: they wait, unclaimed
    sent = 0
    for row in _due(hq):
        with hq.session() as session:
            claimed = session.execute(update(RestockRequest).where(
                RestockRequest.id == row.id, RestockRequest.notified_at.is_(None),
                RestockRequest.unsubscribed_at.is_(None)).values(notified_at=utcnow())).rowcount
        if not claimed:
            continue
        if _mail(hq, row):
            sent += 1
        else:
            with hq.session() as session:
                session.execute(update(RestockRequest).where(RestockRequest.id == row.id)
                                .values(notified_at=None))
    return sent


def _mail(hq: "HQ", row: Any) -> bool:
    from hq.notify import mail

    link = f"{hq.settings.public_url.rstrip('/')}/v1/restock/unsubscribe?r={row.id}&s={link_secret(hq, row.id)}"
    return mail(hq.settings, hq.vault.decrypt(row.email_enc, context=f"restock:{row.id}"),
                f"{row.sku} is back in stock / 已到货",
                f"{row.sku} is back in stock. You asked to be told once; this is the only message.\n"
                f"您关注的商品 {row.sku} 已到货。本邮件只发送一次。\n\n"
                f"Stop / 退订: {link}\n", {"List-Unsubscribe": f"<{link}>"})
