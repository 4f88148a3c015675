"""Orders with filters, CSV export, and the revenue report (HQ's ledger figures, grouped in Python: same on both).

Buyer contact and account are sealed at rest (`sitedb.buyer`): staff see them opened with the
site key, and find an order by contact through its keyed index (an exact match).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import logging
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kitcore.export_archive import guard_formula
from storefront.clock import day_bounds
from sitedb.buyer import Buyer, BuyerBox
from sitedb.models import Order
from sitedb.tables import settlement_entries

log = logging.getLogger("storefront.admin")

STATUSES = ("pending", "approved", "pending_payment", "delivered", "review", "rejected", "expired", "refunded")
CSV_COLUMNS = ("id", "created_at", "status", "sku", "item_name", "category", "quantity", "unit_price_cents",
               "discount_cents", "total_cents", "hq_price_cents", "currency", "buyer_account", "buyer_contact",
               "decision", "public_reason", "decided_at")


@dataclass
class OrderFilter:
    status: str | None = None
    start: date | None = None
    end: date | None = None
    q: str | None = None
    zone: str = "UTC"  # the site's time zone: a date is the site's day
    errors: dict[str, str] = field(default_factory=dict)


def parse_filter(params: dict[str, str], date_error: str, zone: str = "UTC") -> OrderFilter:
    """Validate the filter form; bad values are reported, not silently dropped."""
    flt = OrderFilter(zone=zone)
    status = params.get("status", "")
    flt.status = status if status in STATUSES else None
    parse_dates(params, flt, date_error)
    q = params.get("q", "").strip()[:64]
    flt.q = q or None
    return flt


def parse_dates(params: dict[str, str], flt: Any, date_error: str) -> None:
    """`start` and `end` (YYYY-MM-DD) onto `flt`; a bad one is reported on its field as `date_error`."""
    for name in ("start", "end"):
        raw = params.get(name, "").strip()
        if raw:
            try:
                setattr(flt, name, date.fromisoformat(raw))
            except ValueError:
                flt.errors[name] = date_error


def _filtered(flt: OrderFilter, buyers: BuyerBox | None):  # type: ignore[no-untyped-def]
    stmt = select(Order)
    if flt.status:
        stmt = stmt.where(Order.status == flt.status)
    if flt.start:
        stmt = stmt.where(Order.created_at >= day_bounds(flt.start, flt.zone))
    if flt.end:
        stmt = stmt.where(Order.created_at < day_bounds(flt.end + timedelta(days=1), flt.zone))
    if flt.q:
        like = "%" + flt.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = [Order.id.ilike(like, escape="\\"), Order.item_name.ilike(like, escape="\\"),
                 Order.sku.ilike(like, escape="\\")]
        if buyers is not None:
            found.append(Order.buyer_contact_index == buyers.contact_index(flt.q))
        stmt = stmt.where(or_(*found))
    return stmt


def list_orders(session: Session, flt: OrderFilter, buyers: BuyerBox | None,
                limit: int = 200) -> tuple[list[tuple[Order, Buyer | None]], int]:
    """The filtered orders, newest first, each with its buyer opened (None when it does not open)."""
    stmt = _filtered(flt, buyers)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(session.scalars(stmt.order_by(Order.created_at.desc(), Order.id).limit(limit)))
    return [(order, opened_buyer(order, buyers)) for order in rows], total


def opened_buyer(order: Order, buyers: BuyerBox | None) -> Buyer | None:
    if buyers is None:
        return None
    try:
        return buyers.open(order.id, order.buyer_sealed)
    except ValueError:
        log.error("buyer data of order %s could not be opened with the site key", order.id)
        return None


def _cell(value: object) -> str:
    """CSV cells that a spreadsheet would run as a formula are prefixed with a quote."""
    text = "" if value is None else (value.isoformat() if isinstance(value, datetime) else str(value))
    return guard_formula(text)


def export_csv(session: Session, flt: OrderFilter, buyers: BuyerBox | None) -> Iterator[str]:
    """The filtered orders as CSV, streamed in batches (no card keys, no password hashes, no IP)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    yield "\ufeff" + buf.getvalue()  # BOM: spreadsheets open UTF-8 Chinese text correctly
    stmt = _filtered(flt, buyers).order_by(Order.created_at, Order.id).execution_options(yield_per=500)
    for order in session.scalars(stmt):
        buf.seek(0)
        buf.truncate()
        buyer = opened_buyer(order, buyers)
        opened = {"buyer_account": buyer.account if buyer else None, "buyer_contact": buyer.contact if buyer else None}
        writer.writerow([_cell(opened[c] if c in opened else getattr(order, c)) for c in CSV_COLUMNS])
        yield buf.getvalue()


SALE_KINDS = ("order", "refund")
LINES_SHOWN = 200


@dataclass
class RevenueRow:
    """Sales in a period, HQ's figures from the site's side: HQ cost and HQ share are negative, as on the statement."""

    period: str
    orders: int = 0
    refunds: int = 0
    gross_cents: int = 0
    cost_cents: int = 0
    share_cents: int = 0
    net_cents: int = 0

    def add(self, kind: str, gross: int, cost: int, share: int, net: int) -> None:
        self.orders += kind == "order"
        self.refunds += kind == "refund"
        self.gross_cents += gross
        self.cost_cents += cost
        self.share_cents += share
        self.net_cents += net


@dataclass
class Revenue:
    rows: list[RevenueRow]
    grand: RevenueRow
    lines: list[Any]  # the latest sale lines: entry id, posted_at, kind, order id, item, the four amounts
    awaiting_orders: int  # delivered here, not yet in the copy of HQ's ledger
    awaiting_cents: int


def _period(moment: datetime, by: str, zone: str = "UTC") -> str:
    day = moment.astimezone(ZoneInfo(zone)).date()
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def revenue(session: Session, by: str, days: int, now: datetime | None = None, zone: str = "UTC") -> Revenue:
    """Sales and refunds per day or ISO week of the site's zone from HQ's ledger entries (the agent's copy): HQ's own numbers.

    Net = gross + HQ cost + HQ share (both negative), line for line the statement's; a sale at HQ's
    own price nets minus the share, and the page says so rather than showing an unexplained loss.
    """
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=days)
    e = settlement_entries.c
    sales = (select(e.id, e.posted_at, e.kind, func.coalesce(Order.id, e.reference).label("order_id"),
                    Order.item_name, e.gross_fen, e.hq_cost_fen, e.hq_share_fen, e.net_fen)
             .outerjoin(Order, Order.hq_order_id == e.source)
             .where(e.kind.in_(SALE_KINDS), e.posted_at >= since))
    rows: dict[str, RevenueRow] = {}
    grand = RevenueRow("total")
    for line in session.execute(sales):
        key = _period(as_utc(line.posted_at), by, zone)
        for row in (rows.setdefault(key, RevenueRow(key)), grand):
            row.add(line.kind, line.gross_fen, line.hq_cost_fen, line.hq_share_fen, line.net_fen)
    lines = list(session.execute(sales.order_by(e.id.desc()).limit(LINES_SHOWN)))
    booked = select(e.id).where(e.kind == "order", e.source == Order.hq_order_id).exists()
    count, cents = session.execute(select(func.count(), func.coalesce(func.sum(Order.total_cents), 0))
                                   .where(Order.status == "delivered", ~booked)).one()
    return Revenue(sorted(rows.values(), key=lambda r: r.period, reverse=True), grand, lines, int(count), int(cents))


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
