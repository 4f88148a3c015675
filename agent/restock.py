"""Buyers' back-in-stock requests, from the shop's table to HQ (which mails once, hq.restock).

Each row is opened (the address is sealed with the site key), sent, and deleted once HQ took
it, or refused it for good (a SKU HQ no longer sells, an address it does not accept): the
site keeps no address longer than it must. A retryable failure leaves the rest for next time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from sitedb.buyer import BuyerBox
from sitedb.tables import restock_requests as t

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from agent.hq_client import HQClient

log = logging.getLogger("agent.restock")
BATCH = 100


def forward_once(engine: "Engine", client: "HQClient", site_key: bytes) -> int:
    """Send up to BATCH waiting requests; returns how many left the site."""
    from agent.hq_client import HQError

    buyers = BuyerBox(site_key)
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.sku, t.c.email_sealed).order_by(t.c.created_at).limit(BATCH)).all()
    done = 0
    for row in rows:
        try:
            email = buyers.open(f"restock:{row.id}", row.email_sealed).contact
            client.restock(row.sku, email)
        except ValueError:
            log.warning("a back-in-stock request does not open with the site key; dropped")
        except HQError as exc:
            if exc.retryable or exc.kind in ("auth", "refused"):
                break
            log.info("HQ refused a back-in-stock request: %s", exc.detail)
        with engine.begin() as conn:
            conn.execute(delete(t).where(t.c.id == row.id))
        done += 1
    return done
