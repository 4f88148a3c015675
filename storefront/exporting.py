"""The licensee's exit export: the site's business data as CSV and JSON files in one checksummed tar stream.

`python -m storefront export` (what `kitctl export` runs in the storefront
container) writes the tar to stdout; kitctl unpacks it on the host. Files:
orders (buyers' contact and account opened with the site key, never order
passwords, buyer IPs or card keys), HQ's statements and ledger entries as the
site holds them, the payout requests with HQ's decisions, the catalog and the
price rules, in the archive format of kitcore.export_archive (CSV and JSON
each, a manifest, SHA256SUMS).
"""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import Table, select

from kitcore import export_archive
from kitcore.export_archive import Source, Written
from sitedb.models import Order
from sitedb.tables import (catalog_items, payout_requests, price_rules, settlement_entries, settlement_statements,
                           site_state)
from storefront.admin.reports import CSV_COLUMNS, opened_buyer

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from sitedb.buyer import BuyerBox

FORMAT = "kitctl site export v1"
# the tables exported as they are: name, table, columns (None: all), order
PLAIN: tuple[tuple[str, Table, tuple[str, ...] | None, str], ...] = (
    ("statements", settlement_statements, None, "id"),
    ("ledger", settlement_entries, None, "id"),
    ("payouts", payout_requests, ("id", "amount_fen", "requested_by", "requested_at", "send_state", "send_error",
                                  "hq_id", "status", "fee_fen", "transfer_ref", "reason", "decided_at"), "requested_at"),
    ("catalog", catalog_items, ("sku", "name", "category", "face_value_cents", "hq_price_cents", "price_cents",
                                "currency", "stock_kind", "min_qty", "max_qty", "stock", "status", "updated_at"), "sku"),
    ("price_rules", price_rules, None, "id"),
)
NOTES = "money in fen (CNY cents); times in UTC; buyers' passwords, IPs and card keys are never exported"


def order_records(session: "Session", buyers: "BuyerBox | None") -> Iterator[dict[str, Any]]:
    """Every order, oldest first, with the columns of the admin's orders CSV (buyers opened when the key is here)."""
    for order in session.scalars(select(Order).order_by(Order.created_at, Order.id).execution_options(yield_per=500)):
        buyer = opened_buyer(order, buyers)
        opened = {"buyer_account": buyer.account if buyer else None, "buyer_contact": buyer.contact if buyer else None}
        yield {c: opened[c] if c in opened else getattr(order, c) for c in CSV_COLUMNS}


def table_records(session: "Session", table: Table, columns: tuple[str, ...] | None,
                  order_by: str) -> Iterator[dict[str, Any]]:
    chosen = [table.c[c] for c in columns] if columns else list(table.c)
    query = select(*chosen).order_by(table.c[order_by]).execution_options(yield_per=1000)
    for row in session.execute(query):
        yield dict(row._mapping)


def write_archive(engine: "Engine", buyers: "BuyerBox | None", out: IO[bytes],
                  now: Callable[[], float] = time.time) -> list[Written]:
    """The whole export as an uncompressed tar stream on `out`; what went in (manifest and sums last)."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        site = session.scalar(select(site_state.c.site_id).where(site_state.c.id == 1))
        sources = [Source("orders", list(CSV_COLUMNS), order_records(session, buyers))]
        for name, table, columns, order_by in PLAIN:
            sources.append(Source(name, list(columns or table.c.keys()),
                                  table_records(session, table, columns, order_by)))
        return export_archive.write(out, sources, {"format": FORMAT, "site": site, "notes": NOTES}, now())


def main(args: list[str]) -> int:
    """`python -m storefront export`: the tar on stdout; errors one line on stderr, exit 2."""
    import sys

    from sqlalchemy.exc import DBAPIError

    from sitedb.buyer import BuyerBox
    from sitedb.engine import make_engine
    from storefront.settings import StorefrontSettings

    if args:
        print("usage: python -m storefront export", file=sys.stderr)
        return 2
    try:
        settings = StorefrontSettings()
        key = settings.site_key()
        engine = make_engine(settings.resolved_database_url())
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        write_archive(engine, BuyerBox(key) if key else None, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except DBAPIError as exc:
        print(f"error: the site database: {str(exc.orig).strip().splitlines()[0][:200]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0
