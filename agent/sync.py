"""Catalog sync: HQ's changes since the stored cursor, one transaction per page.

Memory stays flat: one page at a time. The cursor moves in the same
transaction as the page's rows, so a crash replays at most one page (and
replaying is harmless: unchanged content costs no write). When HQ says the
cursor is too old (410) the agent walks the whole catalog again, marking
every SKU it sees with a new generation, and deletes the unmarked ones only
after the last page: the storefront never sees an empty catalog.

The stored position (`site_state.catalog_cursor`) is `inc:<cursor>` for an
incremental sync or `full:<generation>:<cursor>` while a full resync runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import queue
import threading
import time
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
from sqlalchemy import Engine, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from agent.hq_client import CatalogEntry, CatalogPage, HQClient, HQError, NotModified
from agent.metrics import AgentMetrics
from agent.state import STATE_ID, audit, update_state, utcnow
from sitedb.models import CatalogItem, PriceRule, SiteState
from sitedb.pricing import choose_rule, selling_price

log = logging.getLogger("agent.sync")
items_t = CatalogItem.__table__
HQ_FIELDS = ("name", "category", "face_value_cents", "price_cents", "currency", "stock_kind",
             "account_pattern", "min_qty", "max_qty", "stock", "status")
MAX_PAGES_PER_RUN = 10_000  # 10M SKUs at the largest page: a bound, not a limit anyone meets


@dataclass(frozen=True)
class Position:
    cursor: str | None
    full_generation: int | None = None  # set while a full resync (mark and sweep) runs

    def encode(self) -> str:
        if self.full_generation is not None:
            return f"full:{self.full_generation}:{self.cursor or ''}"
        return f"inc:{self.cursor or ''}"

    @classmethod
    def decode(cls, text: str | None) -> "Position | None":
        if not text:
            return None
        if text.startswith("full:"):
            gen, _, cursor = text[5:].partition(":")
            return cls(cursor or None, int(gen))
        if text.startswith("inc:"):
            return cls(text[4:] or None)
        return None


@dataclass
class SyncResult:
    mode: str = "incremental"
    pages: int = 0
    upserts: int = 0
    deletes: int = 0
    unchanged: int = 0
    swept: int = 0
    not_modified: bool = False
    complete: bool = False
    changed: list[dict[str, Any]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class PricedRule:
    """A detached copy of a price rule (safe across sessions and threads)."""

    id: int
    scope: str
    target: str | None
    kind: str
    value: int
    rounding: str
    enabled: bool


_hq_values = operator.attrgetter(*HQ_FIELDS)


def content_hash(entry: CatalogEntry) -> str:
    """Of HQ's fields only (not the version): a re-sent unchanged item is recognised.

    `repr` of a tuple of str/int/None is stable across runs and much cheaper than JSON.
    """
    return hashlib.sha256(repr(_hq_values(entry)).encode()).hexdigest()


def load_rules(engine: Engine) -> list[PricedRule]:
    with Session(engine) as session:
        rows = session.scalars(select(PriceRule).where(PriceRule.enabled.is_(True))).all()
        return [PricedRule(r.id, r.scope, r.target, r.kind, r.value, r.rounding, r.enabled) for r in rows]


def rules_fingerprint(rules: list[PricedRule]) -> str:
    return hashlib.sha256(repr(sorted(rules, key=lambda r: r.id)).encode()).hexdigest()


class PageFetcher:
    """Fetches catalog pages back to back in its own thread, one page ahead of the writer.

    HQ builds page N+2 while page N is written and N+1 waits: neither side idles for the
    other. A failure is handed over in order and raised by `next()`; after a `NotModified`,
    a last page, a failure or a stop, the thread ends.
    """

    def __init__(self, client: HQClient, cursor: str | None, limit: int, etag: str | None,
                 stop: threading.Event) -> None:
        self.client = client
        self.limit = limit
        self.stop = stop
        self.halt = threading.Event()
        self.pages: queue.Queue[CatalogPage | NotModified | BaseException] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, args=(cursor, etag), name="sync-fetch", daemon=True)
        self.thread.start()

    def next(self) -> CatalogPage | NotModified:
        item = self.pages.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop fetching; waits for a request in flight (bounded by the HTTP timeout)."""
        self.halt.set()
        self.thread.join()

    def _run(self, cursor: str | None, etag: str | None) -> None:
        while not self.halt.is_set():
            try:
                page = self.client.catalog(cursor, self.limit, etag)
            except BaseException as exc:  # handed to the writer thread, raised there
                self._hand_over(exc)
                return
            self._hand_over(page)
            if isinstance(page, NotModified) or not page.has_more or self.stop.is_set():
                return
            cursor, etag = page.next_cursor, None

    def _hand_over(self, item: CatalogPage | NotModified | BaseException) -> None:
        while not self.halt.is_set():
            try:
                self.pages.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


class CatalogSync:
    """Pulls HQ's catalog into `catalog_items`; one instance per agent."""

    def __init__(self, engine: Engine, client: HQClient, metrics: AgentMetrics,
                 emit: Callable[[str, dict[str, Any]], None] | None = None, page_limit: int = 1000,
                 stop: threading.Event | None = None, wants: Callable[[str], bool] | None = None) -> None:
        self.engine = engine
        self.client = client
        self.metrics = metrics
        self.emit = emit or (lambda event, payload: None)
        self.wants = wants or (lambda event: emit is not None)
        self.page_limit = page_limit
        self.stop = stop or threading.Event()
        self.upsert = _upsert_statement(engine)
        self._new_skus: set[str] = set()  # of the page being planned: not stored yet (bulk-loaded)
        self.last_rules: str | None = None
        self.after_page: Callable[[int], None] | None = None  # test hook: crash points

    # -- entry points --------------------------------------------------------
    def run(self) -> SyncResult:
        """Sync until HQ has nothing more (or a stop is requested between pages)."""
        started = time.perf_counter()
        rules = load_rules(self.engine)
        self._reprice_if_rules_changed(rules)
        position = self._position()
        result = SyncResult(mode="full" if position.full_generation is not None else "incremental")
        for attempt in range(3):  # the first try, then at most two walks from scratch
            try:
                result = self._walk(position, rules, result)
                break
            except HQError as exc:
                if exc.kind != "cursor_expired" or attempt == 2:
                    raise
                log.warning("catalog cursor expired at HQ; resyncing the whole catalog (mark and sweep)")
                position = self.start_full_resync()
                result = SyncResult(mode="full")
        if result.complete:
            self.metrics.sync_duration.labels(result.mode).observe(time.perf_counter() - started)
            self.metrics.sync_last_success.set(time.time())
        return result

    def start_full_resync(self) -> Position:
        """Begin a mark-and-sweep walk from the start under a new generation."""
        with Session(self.engine) as session, session.begin():
            gen = session.execute(select(SiteState.sync_generation).where(SiteState.id == STATE_ID)).scalar_one()
            position = Position(None, gen + 1)
            update_state(session, catalog_cursor=position.encode(), catalog_etag=None)
            audit(session, "catalog_full_resync", generation=gen + 1)
        return position

    # -- walking pages ---------------------------------------------------------
    def _position(self) -> Position:
        with Session(self.engine) as session:
            text = session.execute(select(SiteState.catalog_cursor).where(SiteState.id == STATE_ID)).scalar_one()
        position = Position.decode(text)
        return position if position is not None else self.start_full_resync()

    def _walk(self, position: Position, rules: list[PricedRule], result: SyncResult) -> SyncResult:
        """Apply pages in order while a fetcher thread brings the next ones back to back.

        At most three pages are in memory (one being written, one queued, one arriving);
        the position still moves only with a committed page.
        """
        fetcher = PageFetcher(self.client, position.cursor, self.page_limit, self._etag_for(position), self.stop)
        try:
            for _ in range(MAX_PAGES_PER_RUN):
                page = fetcher.next()
                if isinstance(page, NotModified):
                    result.not_modified = result.complete = True
                    self._touch_last_sync()
                    return result
                position = self._apply_page(position, page, rules, result)
                result.pages += 1
                if self.after_page is not None:
                    self.after_page(result.pages)
                if not page.has_more:
                    result.complete = True
                    return result
                if self.stop.is_set():
                    return result
        finally:
            fetcher.close()
        raise RuntimeError("catalog sync: page bound reached; HQ keeps saying has_more")

    def _etag_for(self, position: Position) -> str | None:
        if position.full_generation is not None:
            return None
        with Session(self.engine) as session:
            stored = session.execute(select(SiteState.catalog_etag).where(SiteState.id == STATE_ID)).scalar_one()
        if not stored:
            return None
        try:
            doc = json.loads(stored)
        except ValueError:
            return None
        return doc.get("e") if doc.get("c") == (position.cursor or "") else None

    def _apply_page(self, position: Position, page: CatalogPage, rules: list[PricedRule],
                    result: SyncResult) -> Position:
        """Write one page and the next position in one transaction."""
        gen = position.full_generation
        next_position = Position(page.next_cursor, gen)
        finished = not page.has_more
        changed: list[dict[str, Any]] = []
        with Session(self.engine) as session, session.begin():
            upserts, unchanged, tombstones = self._plan(session, page.items, rules, gen)
            if upserts:
                self.upsert(session, upserts, self._new_skus)
            if unchanged and gen is not None:  # one statement per page (a page has at most 1000 SKUs)
                session.execute(
                    update(items_t).where(items_t.c.sku.in_(bindparam("skus", expanding=True)))
                    .values(sync_mark=gen, updated_at=items_t.c.updated_at),
                    {"skus": unchanged},
                )
            deleted = self._delete(session, tombstones)
            state: dict[str, Any] = {"catalog_cursor": next_position.encode(), "catalog_etag": None}
            if finished:
                state["last_sync_at"] = utcnow()
                state["catalog_etag"] = _etag_doc(position.cursor, page)
                if gen is not None:
                    result.swept += self._sweep(session, gen)
                    next_position = Position(page.next_cursor)
                    state.update(catalog_cursor=next_position.encode(), sync_generation=gen)
            update_state(session, **state)
        result.upserts += len(upserts)
        result.unchanged += len(unchanged)
        result.deletes += deleted
        self._count(len(upserts), len(unchanged), deleted)
        if not self.wants("catalog_item"):
            return next_position
        for row in upserts:
            changed.append({"sku": row["sku"], "category": row["category"], "status": row["status"],
                            "price_cents": row["price_cents"], "hq_price_cents": row["hq_price_cents"],
                            "deleted": False})
        for sku, _version in tombstones:
            changed.append({"sku": sku, "deleted": True})
        for item in changed:
            self.emit("catalog_item", item)
        return next_position

    def _plan(self, session: Session, entries: list[CatalogEntry], rules: list[PricedRule],
              gen: int | None) -> tuple[list[dict[str, Any]], list[str], list[tuple[str, int]]]:
        """Split a page into rows to write, SKUs unchanged, and tombstones."""
        live = {e.sku: e for e in entries if not e.deleted and e.is_complete()}
        tombstones = [(e.sku, e.version) for e in entries if e.deleted]
        skipped = [e.sku for e in entries if not e.deleted and not e.is_complete()]
        if skipped:
            log.warning("catalog page had incomplete items; skipped", extra={"count": len(skipped)})
        existing = {r.sku: r for r in self._existing(session, list(live))} if live else {}
        self._new_skus = live.keys() - existing.keys()
        upserts: list[dict[str, Any]] = []
        unchanged: list[str] = []
        now = utcnow()
        for sku, entry in live.items():
            digest = content_hash(entry)
            rule = choose_rule(entry, rules)
            price = selling_price(entry.price_cents or 0, rule)
            rule_id = rule.id if rule else None
            old = existing.get(sku)
            if old is not None and (old.content_hash, old.price_cents, old.price_rule_id) == (digest, price, rule_id):
                unchanged.append(sku)
                continue
            upserts.append(_row(entry, digest, price, rule_id, gen or 0, now))
        return upserts, unchanged, tombstones

    def _existing(self, session: Session, skus: list[str]) -> list[Any]:
        """(sku, content_hash, price_cents, price_rule_id) of the stored rows among `skus`."""
        cols = (items_t.c.sku, items_t.c.content_hash, items_t.c.price_cents, items_t.c.price_rule_id)
        if self.engine.dialect.name == "postgresql":  # one JSON parameter instead of a thousand binds
            from sqlalchemy import text

            wanted = select(func.jsonb_array_elements_text(text("CAST(:skus AS jsonb)"))).scalar_subquery()
            query = select(*cols).where(items_t.c.sku.in_(wanted))
            return list(session.execute(query, {"skus": orjson.dumps(skus).decode()}).all())
        return list(session.execute(select(*cols).where(items_t.c.sku.in_(skus))).all())

    def _delete(self, session: Session, tombstones: list[tuple[str, int]]) -> int:
        deleted = 0
        for sku, version in tombstones:  # a tombstone never removes a newer version
            res = session.execute(delete(items_t).where(items_t.c.sku == sku, items_t.c.hq_version <= version))
            deleted += res.rowcount or 0
        return deleted

    def _sweep(self, session: Session, gen: int) -> int:
        res = session.execute(delete(items_t).where(items_t.c.sync_mark < gen))
        swept = res.rowcount or 0
        if swept:
            audit(session, "catalog_swept", generation=gen, removed=swept)
        self.metrics.catalog_changes.labels("swept").inc(swept)
        return swept

    def _touch_last_sync(self) -> None:
        with Session(self.engine) as session, session.begin():
            update_state(session, last_sync_at=utcnow())

    def _count(self, upserts: int, unchanged: int, deleted: int) -> None:
        c = self.metrics.catalog_changes
        c.labels("upsert").inc(upserts)
        c.labels("unchanged").inc(unchanged)
        c.labels("delete").inc(deleted)

    # -- price rules -----------------------------------------------------------
    def _reprice_if_rules_changed(self, rules: list[PricedRule]) -> None:
        fingerprint = rules_fingerprint(rules)
        if fingerprint != self.last_rules:
            changed = reprice_all(self.engine, rules)
            self.metrics.catalog_changes.labels("repriced").inc(changed)
            self.last_rules = fingerprint


def reprice_all(engine: Engine, rules: list[PricedRule], chunk: int = 2000) -> int:
    """Re-apply the price rules to every stored SKU, writing only the prices that change."""
    changed, after = 0, ""
    while True:
        with Session(engine) as session, session.begin():
            rows = session.execute(
                select(items_t.c.sku, items_t.c.category, items_t.c.hq_price_cents, items_t.c.price_cents,
                       items_t.c.price_rule_id)
                .where(items_t.c.sku > after).order_by(items_t.c.sku).limit(chunk)
            ).all()
            if not rows:
                return changed
            updates = []
            for r in rows:
                rule = choose_rule({"sku": r.sku, "category": r.category}, rules)
                price, rule_id = selling_price(r.hq_price_cents, rule), (rule.id if rule else None)
                if (price, rule_id) != (r.price_cents, r.price_rule_id):
                    updates.append({"b_sku": r.sku, "price_cents": price, "price_rule_id": rule_id})
            if updates:
                session.execute(update(items_t).where(items_t.c.sku == bindparam("b_sku")), updates)
            changed += len(updates)
            after = rows[-1].sku


def catalog_size(engine: Engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(items_t)).scalar_one()


def _row(entry: CatalogEntry, digest: str, price: int, rule_id: int | None, mark: int,
         now: datetime) -> dict[str, Any]:
    return {
        "sku": entry.sku, "name": entry.name, "category": entry.category,
        "face_value_cents": entry.face_value_cents, "hq_price_cents": entry.price_cents,
        "price_cents": price, "price_rule_id": rule_id, "currency": entry.currency,
        "stock_kind": entry.stock_kind, "account_pattern": entry.account_pattern,
        "min_qty": entry.min_qty, "max_qty": entry.max_qty, "stock": entry.stock,
        "status": entry.status, "hq_version": entry.version, "content_hash": digest,
        "sync_mark": mark, "updated_at": now,
    }


def _etag_doc(cursor: str | None, page: CatalogPage) -> str | None:
    """Remember the ETag only for an empty last page: asking the same cursor again may get 304."""
    if page.items or not page.etag:
        return None
    doc = json.dumps({"c": cursor or "", "e": page.etag}, separators=(",", ":"))
    return doc if len(doc) <= 256 else None


_PG_TYPES = {"sku": "text", "name": "text", "category": "text", "face_value_cents": "bigint",
             "hq_price_cents": "bigint", "price_cents": "bigint", "price_rule_id": "integer", "currency": "text",
             "stock_kind": "text", "account_pattern": "text", "min_qty": "integer", "max_qty": "integer",
             "stock": "integer", "status": "text", "hq_version": "bigint", "content_hash": "text",
             "sync_mark": "bigint", "updated_at": "timestamptz"}


def _upsert_statement(engine: Engine) -> Callable[[Session, list[dict[str, Any]], set[str]], None]:
    """A writer of rows as INSERT … ON CONFLICT (sku) DO UPDATE, the fast way for each database.

    PostgreSQL: SKUs not stored yet (`new`, read in the same transaction; only the sync
    thread writes this table) go in with a binary COPY, the cheapest way into PostgreSQL
    (a first sync is all new rows); changed rows with one statement per page taking the
    rows as one JSON parameter, so the cost does not grow with bind parameters.
    SQLite: executemany, a C loop in sqlite3.
    """
    cols = [c.name for c in items_t.columns]
    if set(cols) != set(_PG_TYPES):
        raise RuntimeError("catalog_items columns changed; update _PG_TYPES")
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "sku")
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        record = ", ".join(f"{c} {_PG_TYPES[c]}" for c in cols)
        stmt = text(f"INSERT INTO catalog_items ({', '.join(cols)}) SELECT {', '.join(cols)} "
                    f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({record}) "
                    f"ON CONFLICT (sku) DO UPDATE SET {updates}")
        copy_sql = f"COPY catalog_items ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)"
        copy_types = [_PG_TYPES[c] for c in cols]
        values = operator.itemgetter(*cols)

        def write_pg(session: Session, rows: list[dict[str, Any]], new: set[str]) -> None:
            fresh = [r for r in rows if r["sku"] in new]
            if fresh:
                raw = session.connection().connection.driver_connection
                with raw.cursor() as cur, cur.copy(copy_sql) as copy:
                    copy.set_types(copy_types)
                    for row in fresh:
                        copy.write_row(values(row))
            if len(fresh) < len(rows):
                changed = [r for r in rows if r["sku"] not in new]
                session.execute(stmt, {"rows": orjson.dumps(changed).decode()})

        return write_pg
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        ins = insert(items_t)
        upsert = ins.on_conflict_do_update(index_elements=["sku"],
                                           set_={c: ins.excluded[c] for c in cols if c != "sku"})

        def write_sqlite(session: Session, rows: list[dict[str, Any]], new: set[str]) -> None:
            session.execute(upsert, rows)

        return write_sqlite
    raise RuntimeError(f"unsupported database {engine.dialect.name}")
