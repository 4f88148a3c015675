"""HQ's side of a site's exit export: what HQ holds for one site, in the same open formats as `kitctl export`.

When a licence ends, HQ can hand the licensee (or keep on record) the site's
orders as HQ received them, its statements, its ledger entries (as statement
lines, the site's side), its payouts, its licences and the catalog its
licence allowed. The archive is kitcore.export_archive's: each table as CSV
and JSON, a manifest, SHA256SUMS. Never exported: buyers' IPs, request
hashes, card keys, anything of another site.
"""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import select

from hq.errors import ApiError
from hq.ledger import feed
from hq.ledger.payouts import payout_json
from hq.ledger.statements import statement_json
from hq.models import CatalogItem, Licence, Order, Payout, Site, Statement
from kitcore import export_archive
from kitcore.export_archive import Source, Written

if TYPE_CHECKING:
    from hq.service import HQ

FORMAT = "kitctl hq site export v1"
NOTES = ("HQ's records of one site: money in fen (CNY cents), times in UTC; buyers' IPs, request hashes and card "
         "keys are never exported")
ORDER_COLUMNS = ("hq_order_id", "order_id", "sku", "quantity", "unit_price_cents", "hq_price_cents", "currency",
                 "buyer_account", "buyer_contact", "buyer_region", "site_created_at", "received_at", "decision",
                 "status", "reasons", "decided_by", "decided_at")
STATEMENT_COLUMNS = ("id", "cadence", "period_start", "period_end", "totals", "csv_sha256", "issued_at", "issued_by",
                     "response", "comment", "responded_at", "resolution")
LEDGER_COLUMNS = ("id", "posted_at", "kind", "source", "reference", "gross_fen", "hq_cost_fen", "hq_share_fen",
                  "fees_fen", "adjustment_fen", "payout_fen", "net_fen")
PAYOUT_COLUMNS = ("id", "request_id", "amount_fen", "fee_fen", "status", "requested_at", "decided_at", "decided_by",
                  "transfer_ref", "reason")
LICENCE_COLUMNS = ("jti", "tier", "features", "categories", "regions", "revenue_share_bps", "issued_at", "expires_at",
                   "revoked_at")
CATALOG_COLUMNS = ("sku", "name", "category", "face_value_cents", "price_cents", "currency", "stock_kind", "min_qty",
                   "max_qty", "status", "updated_at")
BATCH = 1000


def _rows(hq: "HQ", query: Any, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    with hq.session() as s:
        for row in s.scalars(query.execution_options(yield_per=BATCH)):
            yield {c: getattr(row, c) for c in columns}


def _statements(hq: "HQ", site_id: str) -> Iterator[dict[str, Any]]:
    with hq.session() as s:
        for row in s.scalars(select(Statement).where(Statement.site_id == site_id).order_by(Statement.id)):
            yield statement_json(row)


def _payouts(hq: "HQ", site_id: str) -> Iterator[dict[str, Any]]:
    with hq.session() as s:
        for row in s.scalars(select(Payout).where(Payout.site_id == site_id).order_by(Payout.id)):
            yield payout_json(row)


def _ledger(hq: "HQ", site_id: str) -> Iterator[dict[str, Any]]:
    """Every entry of the site, in the order posted, a page at a time (the feed's rows: the statement lines)."""
    after = 0
    while True:
        page = feed.entries_after(hq, site_id, after, feed.MAX_LIMIT)["entries"]
        yield from page
        if len(page) < feed.MAX_LIMIT:
            return
        after = page[-1]["id"]


def _allowed_categories(hq: "HQ", site_id: str) -> list[str]:
    """The categories of the site's latest licence: what it was allowed to sell."""
    with hq.session() as s:
        latest = s.scalar(select(Licence).where(Licence.site_id == site_id).order_by(Licence.issued_at.desc()))
        return list(latest.categories) if latest else []


def sources(hq: "HQ", site_id: str) -> list[Source]:
    categories = _allowed_categories(hq, site_id)
    return [
        Source("orders", list(ORDER_COLUMNS),
               _rows(hq, select(Order).where(Order.site_id == site_id).order_by(Order.id), ORDER_COLUMNS)),
        Source("statements", list(STATEMENT_COLUMNS), _statements(hq, site_id)),
        Source("ledger", list(LEDGER_COLUMNS), _ledger(hq, site_id)),
        Source("payouts", list(PAYOUT_COLUMNS), _payouts(hq, site_id)),
        Source("licences", list(LICENCE_COLUMNS),
               _rows(hq, select(Licence).where(Licence.site_id == site_id).order_by(Licence.issued_at), LICENCE_COLUMNS)),
        Source("catalog", list(CATALOG_COLUMNS),
               _rows(hq, select(CatalogItem).where(CatalogItem.category.in_(categories), CatalogItem.deleted.is_(False))
                     .order_by(CatalogItem.sku), CATALOG_COLUMNS)),
    ]


def write_archive(hq: "HQ", site_id: str, out: IO[bytes], now: Callable[[], float] = time.time) -> list[Written]:
    """The site's export as an uncompressed tar stream on `out`; what went in (manifest and sums last)."""
    with hq.session() as s:
        if s.get(Site, site_id) is None:
            raise ApiError(404, "not_found", f"site {site_id!r} has no licence")
    return export_archive.write(out, sources(hq, site_id), {"format": FORMAT, "site": site_id, "notes": NOTES}, now())
