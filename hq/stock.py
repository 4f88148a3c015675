"""Stock warnings: low-stock thresholds per card-key SKU, the state the shops show, alerts once.

A SKU's state follows from its available card keys and its threshold (its own, else the
default in `hq_meta.low_stock_default`; 0 turns warnings off): `sold_out` at 0 keys,
`low` below the threshold, else `in_stock`. The catalog feed computes it with the stock
count (hq.catalog), so the two never disagree. Each watch round (with the fleet alerts)
stores the state it sees; a change bumps the SKU's catalog version, so syncing shops get
the new state without waiting for an import, and operators are told once per change
(webhook/mail, hq.notify). Back in stock, the buyers who asked are mailed (hq.restock).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from hq import audit, catalog
from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.models import CardKey, CatalogItem, Meta, StockLevel

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    from hq.service import HQ

log = logging.getLogger("hq.stock")
DEFAULT_KEY = "low_stock_default"
MAX_THRESHOLD = 1_000_000
STATES = ("in_stock", "low", "sold_out")
SEVERITY = {"low": "warning", "sold_out": "critical"}
KIND = {"low": "low_stock", "sold_out": "sold_out"}  # as hq.notify labels them


def state_of(stock: int, threshold: int) -> str:
    """The state a shop shows for `stock` available keys under `threshold`."""
    if stock <= 0:
        return "sold_out"
    return "low" if stock < threshold else "in_stock"


def _check(threshold: int) -> int:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= MAX_THRESHOLD:
        raise ApiError(422, "invalid_request", f"threshold must be a whole number from 0 to {MAX_THRESHOLD}")
    return threshold


def default_threshold(conn: "Session | Connection") -> int:
    value = conn.scalar(select(Meta.value).where(Meta.key == DEFAULT_KEY))
    return int(value) if value is not None else 0


def set_default(hq: "HQ", operator: str, threshold: int) -> dict[str, Any]:
    """The threshold of every card-key SKU without its own."""
    _check(threshold)
    with hq.session() as session:
        meta = session.get(Meta, DEFAULT_KEY)
        if meta is None:
            session.add(Meta(key=DEFAULT_KEY, value=str(threshold)))
        else:
            meta.value = str(threshold)
        audit.record(session, operator, "stock.default", None, threshold=threshold)
    return listing(hq)


def set_threshold(hq: "HQ", operator: str, sku: str, threshold: int | None) -> dict[str, Any]:
    """A SKU's own threshold; None goes back to the default."""
    if threshold is not None:
        _check(threshold)
    with hq.session() as session:
        item = session.get(CatalogItem, catalog.validate_sku(sku))
        if item is None or item.deleted:
            raise ApiError(404, "not_found", f"sku {sku!r} is not in the catalog")
        if item.stock_kind != "card_key":
            raise ApiError(409, "not_card_key", f"sku {sku!r} is a direct top-up, it has no stock to warn about")
        level = session.get(StockLevel, sku)
        if level is None:
            session.add(StockLevel(sku=sku, threshold=threshold))
        else:
            level.threshold = threshold
        audit.record(session, operator, "stock.threshold", None, sku=sku, threshold=threshold)
    return listing(hq)


def levels(conn: "Session | Connection", default: int | None = None) -> list[dict[str, Any]]:
    """Every live card-key SKU: stock, threshold (own or `default`, read if not given), state, and the state
    last stored."""
    default = default_threshold(conn) if default is None else default
    skus = list(conn.scalars(select(CatalogItem.sku).where(
        CatalogItem.stock_kind == "card_key", CatalogItem.deleted.is_(False)).order_by(CatalogItem.sku)))
    counts = dict(conn.execute(select(CardKey.sku, func.count()).where(
        CardKey.status == "available").group_by(CardKey.sku)).all())
    own = {r.sku: r for r in conn.execute(select(StockLevel.sku, StockLevel.threshold, StockLevel.state))}
    out = []
    for sku in skus:
        level = own.get(sku)
        threshold = level.threshold if level is not None and level.threshold is not None else default
        stock = int(counts.get(sku, 0))
        out.append({"sku": sku, "stock": stock, "threshold": threshold,
                    "own_threshold": level.threshold if level is not None else None,
                    "state": state_of(stock, threshold), "stored": level.state if level is not None else None})
    return out


def listing(hq: "HQ") -> dict[str, Any]:
    with hq.read() as conn:
        default = default_threshold(conn)
        rows = levels(conn, default)
        return {"default": default, "skus": [{k: v for k, v in r.items() if k != "stored"} for r in rows]}


def evaluate(hq: "HQ") -> list[tuple[str, str, str]]:
    """Store each SKU's state; for each change bump its catalog version. Returns (sku, was, now) changes."""
    changes: list[tuple[str, str, str]] = []
    with hq.read() as conn:  # the common round changes nothing: no write transaction (SQLite's is exclusive)
        moved = [r for r in levels(conn) if r["state"] != r["stored"]]
    if not moved:
        return changes
    now = utcnow()
    with hq.session() as session:
        stored = {lv.sku: lv for lv in session.scalars(select(StockLevel).where(
            StockLevel.sku.in_([r["sku"] for r in moved])))}
        for row in moved:
            sku, state = row["sku"], row["state"]
            level = stored.get(sku)
            if level is None or level.state is None:
                # first sight (a new SKU, or HQ just upgraded): the baseline, not news; changes from here are
                if level is None:
                    level = StockLevel(sku=sku)
                    session.add(level)
                level.state, level.notified_state, level.changed_at = state, state, now
                continue
            was = level.state
            if was == state:
                continue
            claimed = session.execute(update(StockLevel).where(StockLevel.sku == sku, StockLevel.state == was)
                                      .values(state=state, changed_at=now)).rowcount
            if not claimed:  # another worker saw it first
                continue
            catalog.bump(session, sku)
            changes.append((sku, was, state))
    return changes


def claim_notices(hq: "HQ") -> list[dict[str, Any]]:
    """Stock changes operators were not told about yet, claimed by this worker (each goes out once)."""
    out: list[dict[str, Any]] = []
    with hq.read() as conn:
        if not conn.scalar(select(func.count()).select_from(StockLevel).where(StockLevel.state != StockLevel.notified_state)):
            return out
    with hq.session() as session:
        waiting = list(session.scalars(select(StockLevel).where(
            StockLevel.state.is_not(None), StockLevel.notified_state.is_not(None),
            StockLevel.state != StockLevel.notified_state)))
        by_sku = {r["sku"]: r for r in levels(session)}
        for level in waiting:
            sku, told, now, at = level.sku, level.notified_state, level.state, level.changed_at  # before the update
            claimed = session.execute(update(StockLevel).where(StockLevel.sku == sku, StockLevel.notified_state == told)
                                      .values(notified_state=now)).rowcount
            if claimed and sku in by_sku:
                out.append(notice(by_sku[sku], told, at))
    return out


def notice(row: dict[str, Any], was: str | None, at: Any) -> dict[str, Any]:
    """A stock change as hq.notify sends an alert."""
    state = row["state"]
    firing = state != "in_stock"
    summary = (f"{row['sku']}: sold out (0 card keys)" if state == "sold_out" else
               f"{row['sku']}: {row['stock']} card keys left, below the threshold of {row['threshold']}"
               if state == "low" else f"{row['sku']}: back in stock ({row['stock']} card keys)")
    return {"id": f"stock:{row['sku']}", "site": f"sku {row['sku']}", "kind": KIND.get(state) or KIND.get(was or "", "low_stock"),
            "state": "firing" if firing else "resolved", "severity": SEVERITY.get(state, "warning"),
            "summary": summary, "opened_at": iso(at), "last_seen_at": iso(at),
            "resolved_at": None if firing else iso(at), "was": was}


def release(hq: "HQ", sku: str, was: str | None) -> None:
    """Sending failed: put the last told state back so the next round tries again."""
    with hq.session() as session:
        session.execute(update(StockLevel).where(StockLevel.sku == sku).values(notified_state=was))


def watch(hq: "HQ") -> int:
    """One round: states, operator notices, back-in-stock mail to buyers; returns notices sent."""
    from hq import notify, restock

    evaluate(hq)
    sent = notify.deliver(hq.settings, claim_notices(hq),
                          lambda alert: release(hq, alert["id"].split(":", 1)[1], alert["was"]))
    restock.send_due(hq)
    return sent
