"""The catalog: SKUs, their change log, and the cursor feed sites sync from.

Every change appends to `catalog_changes`; its id becomes the item's
`version`. A cursor is the version a site has seen, so the feed is "items
with version > cursor, in version order" — always the latest state, with
deleted items as tombstones. Tombstones older than the retention are pruned;
a cursor from before the pruned point could miss a deletion, so it gets 410
and the site resyncs from scratch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from hq import audit
from hq.clock import utcnow
from hq.errors import ApiError
from hq.fields import SKU_PATTERN, AccountPattern, integer, text
from hq.models import CardKey, CatalogChange, CatalogItem, Meta, StockLevel
from kitcore.licence.tiers import CATEGORIES

if TYPE_CHECKING:
    from hq.service import HQ

class ItemSpec(BaseModel):
    """What an operator sets for a SKU."""

    model_config = ConfigDict(extra="forbid")
    name: text(200, min_length=1)  # type: ignore[valid-type]
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    face_value_cents: integer(0, 10**12)  # type: ignore[valid-type]
    price_cents: integer(0, 10**12)  # type: ignore[valid-type]
    currency: Literal["CNY"] = "CNY"
    stock_kind: Literal["card_key", "direct_topup"] = "card_key"
    account_pattern: AccountPattern | None = None
    min_qty: integer(1, 10000) = 1  # type: ignore[valid-type]
    max_qty: integer(1, 10000) = 10  # type: ignore[valid-type]
    status: Literal["active", "inactive"] = "active"

    @model_validator(mode="after")
    def _qty_range(self) -> "ItemSpec":
        if self.min_qty > self.max_qty:  # a rule across two fields: answered with its own code, qty_range
            raise PydanticCustomError("qty_range", "min_qty is larger than max_qty")
        return self


def validate_sku(sku: str) -> str:
    if not re.match(SKU_PATTERN, sku):
        raise ApiError(422, "invalid_request", "sku must be 1-64 letters, digits, '.', '_' or '-'")
    return sku


def _next_version(session: Session, sku: str, kind: str) -> int:
    change = CatalogChange(sku=sku, kind=kind, at=utcnow())
    session.add(change)
    session.flush()
    return int(change.id)


def upsert(hq: "HQ", operator: str, sku: str, spec: ItemSpec) -> dict[str, Any]:
    return upsert_many(hq, operator, [(sku, spec)])[0]


def upsert_many(hq: "HQ", operator: str, items: list[tuple[str, ItemSpec]]) -> list[dict[str, Any]]:
    """Create or update SKUs in one transaction; each change gets its own version."""
    for sku, _ in items:
        validate_sku(sku)
    with hq.session() as session:
        rows = []
        for sku, spec in items:
            item = session.get(CatalogItem, sku)
            version = _next_version(session, sku, "upsert")
            values = spec.model_dump()
            if item is None:
                item = CatalogItem(sku=sku, **values, version=version, deleted=False, updated_at=utcnow())
                session.add(item)
            else:
                for k, v in values.items():
                    setattr(item, k, v)
                item.version, item.deleted, item.updated_at = version, False, utcnow()
            audit.record(session, operator, "catalog.upsert", None, sku=sku, **values)
            rows.append(item)
        session.flush()
        stock, limits = stock_of(session, rows), thresholds_of(session)
        return [item_json(i, stock.get(i.sku), limits) for i in rows]


def remove(hq: "HQ", operator: str, sku: str) -> dict[str, Any]:
    """Delete a SKU: it stays as a tombstone so syncing sites drop it too."""
    with hq.session() as session:
        item = session.get(CatalogItem, sku)
        if item is None or item.deleted:
            raise ApiError(404, "not_found", f"sku {sku!r} does not exist")
        item.version, item.deleted, item.updated_at = _next_version(session, sku, "delete"), True, utcnow()
        audit.record(session, operator, "catalog.delete", None, sku=sku)
        return tombstone(item)


def bump(session: Session, sku: str) -> None:
    """A stock change the sites should see (e.g. card keys imported)."""
    item = session.get(CatalogItem, sku)
    if item is not None:
        item.version, item.updated_at = _next_version(session, sku, "stock"), utcnow()


def stock_of(session: Session, items: list[CatalogItem]) -> dict[str, int]:
    skus = [i.sku for i in items if i.stock_kind == "card_key" and not i.deleted]
    if not skus:
        return {}
    rows = session.execute(
        select(CardKey.sku, func.count()).where(CardKey.sku.in_(skus), CardKey.status == "available").group_by(CardKey.sku)
    )
    counts = dict(rows.all())
    return {s: int(counts.get(s, 0)) for s in skus}


def thresholds_of(session: Session) -> tuple[int, dict[str, int]]:
    """(default low-stock threshold, the SKUs' own ones): see hq.stock."""
    default = session.get(Meta, "low_stock_default")
    own = session.execute(select(StockLevel.sku, StockLevel.threshold).where(StockLevel.threshold.is_not(None)))
    return (int(default.value) if default is not None else 0), dict(own.all())


def stock_state(stock: int | None, sku: str, limits: tuple[int, dict[str, int]]) -> str | None:
    """What the shop shows: `sold_out`, `low` (below the threshold) or `in_stock`; None for direct top-ups."""
    if stock is None:
        return None
    if stock <= 0:
        return "sold_out"
    return "low" if stock < limits[1].get(sku, limits[0]) else "in_stock"


def item_json(item: CatalogItem, stock: int | None, limits: tuple[int, dict[str, int]] = (0, {})) -> dict[str, Any]:
    if item.deleted:
        return tombstone(item)
    return {
        "sku": item.sku, "name": item.name, "category": item.category,
        "face_value_cents": int(item.face_value_cents), "price_cents": int(item.price_cents),
        "currency": item.currency, "stock_kind": item.stock_kind, "account_pattern": item.account_pattern,
        "min_qty": item.min_qty, "max_qty": item.max_qty,
        "stock": stock if item.stock_kind == "card_key" else None,
        "stock_state": stock_state(stock if item.stock_kind == "card_key" else None, item.sku, limits),
        "status": item.status, "version": int(item.version), "deleted": False,
    }


def tombstone(item: CatalogItem) -> dict[str, Any]:
    return {"sku": item.sku, "version": int(item.version), "deleted": True}


# -- cursors ---------------------------------------------------------------

def encode_cursor(epoch: str, version: int, watermark: int = 0) -> str:
    """An opaque cursor: the version reached, and the prune point the chain is whole against."""
    return base64.urlsafe_b64encode(f"c2:{epoch}:{version}:{watermark}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, epoch: str) -> tuple[int, int] | None:
    """(version, watermark) of a cursor; None when HQ cannot continue from it (resync).

    That is a cursor from another HQ database, or any text HQ did not write:
    the schema only says what a cursor looks like (base64url), so a site with
    a damaged cursor gets 410 and recovers by syncing from the start.

    The watermark is the `catalog_pruned_through` value the cursor's chain was
    consistent with when it was issued: a chain begun from scratch misses no
    deletion even below that point, so only a later prune can expire it.
    """
    if not cursor:
        return 0, 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = text.split(":")
        tag, cur_epoch, version = parts[0], parts[1], int(parts[2])
        if tag == "c2" and len(parts) == 4:
            watermark = int(parts[3])
        elif tag == "c1" and len(parts) == 3:
            watermark = version  # issued before watermarks: whole only above its own version
        else:
            raise ValueError
        if version < 0 or watermark < 0:
            raise ValueError
    except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
        return None
    return (version, watermark) if cur_epoch == epoch else None


def cursor_expired(since: int, watermark: int, pruned: int) -> bool:
    """Tombstones above `since` were pruned after this cursor's chain last caught up."""
    return since > 0 and since < pruned and watermark < pruned


@lru_cache(maxsize=2)
def _feed_sql(postgres: bool) -> tuple[Any, Any, Any, Any]:
    """(meta read, page read, stock counts, own low-stock thresholds), built once.

    Stock is counted for the page's card-key SKUs in one grouped statement whose
    SKU list the planner sees. A count correlated to each page row was planned
    blind (one generic guess for every SKU): with card keys concentrated on a
    few SKUs, PostgreSQL's statistics turned that guess into a sequential scan
    of all card keys per row (measured: pages of 500 went from 10 ms to over 8 s
    once autovacuum analysed the table).
    """
    c = CatalogItem
    page = (select(c.sku, c.version, c.deleted, c.category, c.name, c.face_value_cents, c.price_cents, c.currency,
                   c.stock_kind, c.account_pattern, c.min_qty, c.max_qty, c.status)
            .where(c.version > bindparam("since")).order_by(c.version).limit(bindparam("n")))
    if postgres:  # one text parameter: a 500-element array parameter cost more to send than the count
        of_skus = CardKey.sku == func.any(func.string_to_array(bindparam("skus"), ","))
    else:
        of_skus = CardKey.sku.in_(bindparam("skus", expanding=True))
    stock = select(CardKey.sku, func.count()).where(of_skus, CardKey.status == "available").group_by(CardKey.sku)
    meta = select(Meta.key, Meta.value).where(Meta.key.in_(("epoch", "catalog_pruned_through", "low_stock_default")))
    own = StockLevel.sku == func.any(func.string_to_array(bindparam("skus"), ",")) if postgres else \
        StockLevel.sku.in_(bindparam("skus", expanding=True))
    limits = select(StockLevel.sku, StockLevel.threshold).where(own, StockLevel.threshold.is_not(None))
    return meta, page, stock, limits


def feed(hq: "HQ", categories: list[str], cursor: str | None, limit: int) -> dict[str, Any]:
    """One page of changes after `cursor` for a site allowed `categories`.

    An item whose category the site may not sell shows as a tombstone, so an
    item moved out of the site's categories disappears there too. Three round
    trips per page (meta, the page, its stock counts), plain tuples, no ORM
    objects: a page is up to 1000 items and read-only.
    """
    postgres = hq.engine.dialect.name == "postgresql"
    meta_sql, page_sql, stock_sql, limits_sql = _feed_sql(postgres)
    allowed = set(categories)
    with hq.read() as conn:
        meta = dict(conn.execute(meta_sql).all())
        epoch = meta.get("epoch", "")
        position = decode_cursor(cursor, epoch)
        pruned = int(meta.get("catalog_pruned_through") or 0)
        if position is None or cursor_expired(*position, pruned):
            raise ApiError(410, "cursor_expired", "cursor is older than the retained change log; resync from the start")
        since = position[0]
        rows = conn.execute(page_sql, {"since": since, "n": limit + 1}).all()
        has_more = len(rows) > limit
        rows = [tuple(r) for r in rows[:limit]]
        # (sku, version, deleted, category, ..., stock_kind at 8): SKUs never hold a comma (SKU_PATTERN)
        counted = [r[0] for r in rows if r[8] == "card_key" and not r[2] and r[3] in allowed]
        skus = {"skus": ",".join(counted) if postgres else counted}
        stock = dict(conn.execute(stock_sql, skus).all()) if counted else {}
        own = dict(conn.execute(limits_sql, skus).all()) if counted else {}
    limits = (int(meta.get("low_stock_default") or 0), own)
    items = [_page_item(r, allowed, stock, limits) for r in rows]
    head = int(rows[-1][1]) if rows else since
    return {"items": items, "next_cursor": encode_cursor(epoch, head, pruned), "has_more": has_more}


def _page_item(row: tuple[Any, ...], allowed: set[str], stock: dict[str, int],
               limits: tuple[int, dict[str, int]]) -> dict[str, Any]:
    """What `item_json` gives for a feed row (tuple-unpacked: a page is up to 1000 of them)."""
    (sku, version, deleted, category, name, face, price, currency, kind, pattern, min_qty, max_qty, status) = row
    if deleted or category not in allowed:
        return {"sku": sku, "version": int(version), "deleted": True}
    count = int(stock.get(sku, 0)) if kind == "card_key" else None
    return {
        "sku": sku, "name": name, "category": category, "face_value_cents": int(face), "price_cents": int(price),
        "currency": currency, "stock_kind": kind, "account_pattern": pattern, "min_qty": min_qty,
        "max_qty": max_qty, "stock": count, "stock_state": stock_state(count, sku, limits), "status": status,
        "version": int(version), "deleted": False,
    }


def render(page: dict[str, Any]) -> tuple[bytes, str]:
    """The page as compact UTF-8 JSON bytes (orjson) and its strong ETag (a hash of exactly those bytes)."""
    body = orjson.dumps(page)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def list_items(hq: "HQ", include_deleted: bool = False) -> list[dict[str, Any]]:
    with hq.session() as session:
        query = select(CatalogItem).order_by(CatalogItem.sku)
        if not include_deleted:
            query = query.where(CatalogItem.deleted.is_(False))
        items = list(session.scalars(query))
        stock, limits = stock_of(session, items), thresholds_of(session)
        return [item_json(i, stock.get(i.sku), limits) for i in items]


def prune(hq: "HQ") -> int:
    """Drop tombstones and change-log rows older than the retention; remember how far."""
    cutoff = utcnow() - timedelta(days=hq.settings.tombstone_retention_days)
    with hq.session() as session:
        old = list(session.scalars(select(CatalogItem).where(CatalogItem.deleted.is_(True), CatalogItem.updated_at < cutoff)))
        if old:
            horizon = max(int(i.version) for i in old)
            meta = session.get(Meta, "catalog_pruned_through")
            assert meta is not None
            meta.value = str(max(int(meta.value or 0), horizon))
            for i in old:
                if session.scalar(select(func.count()).select_from(CardKey).where(CardKey.sku == i.sku)):
                    continue  # keys (sold ones too) still refer to it; keep the tombstone row
                session.delete(i)
        session.execute(delete(CatalogChange).where(CatalogChange.at < cutoff))
        return len(old)
