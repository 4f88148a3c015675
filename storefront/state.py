"""What pages read from the site database: the licence state the agent recorded, and the catalog.

Reads are cached for about a second: a suspension shows within that time,
and a busy home page does not cost a query per request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from sitedb.models import CatalogItem, SiteState
from sitedb.suspension import suspension_end
from storefront.i18n import categories_named

T = TypeVar("T")


def database_down(exc: BaseException) -> bool:
    """True for the errors that mean "the database cannot be reached now" (not a bug in a query)."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(frozen=True)
class LicenceView:
    """The licence as the storefront needs it (a copy, safe to share between threads)."""

    known: bool
    status: str
    reason: str | None
    tier: str | None = None
    features: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    revenue_share_bps: int = 0
    expires_at: int | None = None
    last_sync_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    health: dict[str, Any] = field(default_factory=dict)
    suspended_until: int | None = None  # when HQ lifts a timed suspension (Unix seconds); None: until resumed

    @property
    def takes_orders(self) -> bool:
        return self.known and self.status in ("active", "grace")

    @property
    def days_left(self) -> int | None:
        if self.expires_at is None:
            return None
        return int((self.expires_at - time.time()) // 86400)


@dataclass(frozen=True)
class ItemView:
    sku: str
    name: str
    category: str
    price_cents: int
    hq_price_cents: int
    face_value_cents: int
    currency: str
    stock_kind: str
    account_pattern: str | None
    min_qty: int
    max_qty: int
    stock: int | None
    price_rule_id: int | None
    stock_state: str | None = None  # HQ's: in_stock | low | sold_out (its low-stock threshold)

    @property
    def in_stock(self) -> bool:
        return self.stock_state != "sold_out" and (self.stock is None or self.stock > 0)

    @property
    def low_stock(self) -> bool:
        return self.in_stock and self.stock_state == "low"

    @property
    def selling_price_cents(self) -> int:
        """The shelf price, never below HQ's even if a row was written wrong."""
        return max(self.price_cents, self.hq_price_cents)


def item_view(row: CatalogItem) -> ItemView:
    return ItemView(
        sku=row.sku, name=row.name, category=row.category, price_cents=row.price_cents,
        hq_price_cents=row.hq_price_cents, face_value_cents=row.face_value_cents, currency=row.currency,
        stock_kind=row.stock_kind, account_pattern=row.account_pattern, min_qty=row.min_qty,
        max_qty=row.max_qty, stock=row.stock, price_rule_id=row.price_rule_id, stock_state=row.stock_state,
    )


def read_licence(session: Session) -> LicenceView:
    row = session.get(SiteState, 1)
    if row is None:
        return LicenceView(known=False, status="unknown", reason=None)
    return LicenceView(
        known=True, status=row.licence_status, reason=row.status_reason, tier=row.tier,
        features=list(row.features or []), categories=list(row.categories or []), regions=list(row.regions or []),
        revenue_share_bps=row.revenue_share_bps, expires_at=row.licence_expires_at,
        last_sync_at=row.last_sync_at, last_heartbeat_at=row.last_heartbeat_at, health=dict(row.health or {}),
        suspended_until=suspension_end(session.connection()) if row.licence_status == "suspended" else None,
    )


def read_categories(session: Session) -> list[tuple[str, int]]:
    rows = session.execute(
        select(CatalogItem.category, func.count()).where(CatalogItem.status == "active")
        .group_by(CatalogItem.category).order_by(CatalogItem.category)
    )
    return [(c, n) for c, n in rows]


def read_items(session: Session, category: str | None = None, query: str | None = None, limit: int = 200) -> list[ItemView]:
    """Items on sale; a query matches the product's name or SKU, or its category's code or name in either language."""
    stmt = select(CatalogItem).where(CatalogItem.status == "active")
    if category:
        stmt = stmt.where(CatalogItem.category == category)
    if query:
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(CatalogItem.name.ilike(pattern, escape="\\"), CatalogItem.sku.ilike(pattern, escape="\\"),
                              CatalogItem.category.ilike(pattern, escape="\\"),
                              CatalogItem.category.in_(categories_named(query))))
    stmt = stmt.order_by(CatalogItem.category, CatalogItem.price_cents, CatalogItem.sku).limit(limit)
    return [item_view(r) for r in session.scalars(stmt)]


def read_item(session: Session, sku: str) -> ItemView | None:
    row = session.get(CatalogItem, sku)
    return item_view(row) if row is not None and row.status == "active" else None


class PageCache:
    """Rendered bodies of public pages for `ttl` seconds (bounded; cleared when it fills)."""

    def __init__(self, ttl: float, max_entries: int = 512) -> None:
        self._ttl, self._max = ttl, max_entries
        self._data: dict[Any, tuple[float, str]] = {}

    def get(self, key: Any) -> str | None:
        hit = self._data.get(key)
        if hit is None or time.monotonic() - hit[0] >= self._ttl:
            return None
        return hit[1]

    def put(self, key: Any, body: str) -> None:
        if len(self._data) >= self._max:
            self._data.clear()
        self._data[key] = (time.monotonic(), body)

    def clear(self) -> None:
        self._data.clear()


class ReadCache:
    """A tiny TTL cache for read-only views shared by all requests."""

    def __init__(self, sessions: sessionmaker[Session], ttl: float) -> None:
        self._sessions, self._ttl = sessions, ttl
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[Session], T]) -> T:
        now = time.monotonic()
        hit = self._data.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        with self._sessions() as session:
            value = load(session)
        with self._lock:
            if len(self._data) > 2048:
                self._data.clear()
            self._data[key] = (now, value)
        return value

    def peek(self, key: Any) -> Any:
        """The value last loaded for `key`, however old; None if never loaded."""
        hit = self._data.get(key)
        return hit[1] if hit is not None else None

    async def aget(self, key: Any, load: Callable[[Session], T]) -> T:
        """Like `get`, for async routes: a hit costs no thread hop, a miss reads in the thread pool."""
        hit = self._data.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self.get, key, load)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
