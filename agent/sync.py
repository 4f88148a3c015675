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
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from agent.catalog_write import COLUMNS, Row, page_writer
from agent.hq_client import CatalogEntry, CatalogPage, HQClient, HQError, NotModified
from agent.metrics import AgentMetrics
from agent.state import audit, state_value, update_state, utcnow
from sitedb.pricing import RULE_FIELDS, Rule, selling_price
from sitedb.tables import catalog_items as items_t
from sitedb.tables import price_rules

log = logging.getLogger("agent.sync")
HQ_FIELDS = ("name", "category", "face_value_cents", "price_cents", "currency", "stock_kind",
             "account_pattern", "min_qty", "max_qty", "stock", "stock_state", "status")
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


_hq_values = operator.attrgetter(*HQ_FIELDS)


def content_hash(entry: CatalogEntry) -> str:
    """Of HQ's fields only (not the version): a re-sent unchanged item is recognised.

    `repr` of a tuple of str/int/None is stable across runs and much cheaper than JSON.
    """
    return hashlib.sha256(repr(_hq_values(entry)).encode()).hexdigest()


def load_rules(engine: Engine) -> list[Rule]:
    """The enabled rules, read once per sync (immutable: safe across threads)."""
    r = price_rules.c
    with engine.connect() as conn:
        rows = conn.execute(select(*(r[name] for name in RULE_FIELDS)).where(r.enabled.is_(True))).all()
    return [Rule(*row) for row in rows]


def rules_fingerprint(rules: list[Rule]) -> str:
    return hashlib.sha256(repr(sorted(rules, key=lambda r: r.id)).encode()).hexdigest()


class RuleIndex:
    """`sitedb.pricing.choose_rule` + `selling_price` for a whole catalog, O(1) per item.

    The same choice (most specific enabled rule: sku > category > all, the newest id among
    equals), by dictionary lookups instead of a scan of every rule per item; a price is
    computed once per (rule, HQ price) and remembered.
    """

    MEMO_MAX = 65_536

    def __init__(self, rules: list[Rule]) -> None:
        self.by_sku: dict[str, Rule] = {}
        self.by_category: dict[str, Rule] = {}
        self.for_all: Rule | None = None
        for rule in rules:
            if not rule.enabled:
                continue
            if rule.scope == "all":
                if self.for_all is None or rule.id > self.for_all.id:
                    self.for_all = rule
            elif rule.scope in ("sku", "category") and rule.target is not None:
                slot = self.by_sku if rule.scope == "sku" else self.by_category
                if rule.target not in slot or rule.id > slot[rule.target].id:
                    slot[rule.target] = rule
        self._memo: dict[tuple[int | None, int], int] = {}

    def rule_for(self, sku: str, category: str | None) -> Rule | None:
        return self.by_sku.get(sku) or self.by_category.get(category or "") or self.for_all

    def price(self, sku: str, category: str | None, hq_price_cents: int) -> tuple[int, int | None]:
        """(selling price, id of the rule that produced it or None)."""
        rule = self.by_sku.get(sku) or self.by_category.get(category or "") or self.for_all
        rule_id = rule.id if rule is not None else None
        key = (rule_id, hq_price_cents)
        price = self._memo.get(key)
        if price is None:
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            price = self._memo[key] = selling_price(hq_price_cents, rule)
        return price, rule_id


@dataclass
class PlannedPage:
    """A fetched page turned into row tuples and tombstones, ready for the writer."""

    next_cursor: str
    has_more: bool
    etag: str | None
    empty: bool
    rows: list[Row]
    tombstones: list[tuple[str, int]]


class PageFetcher:
    """Fetches and plans catalog pages back to back in its own thread, one page ahead of the writer.

    HQ builds page N+2 while page N is written and N+1 waits, and this thread's Python work
    (HTTP, decoding, hashing, pricing) runs while the writer waits on the database: no side
    idles for the other. A failure is handed over in order and raised by `next()`; after a
    `NotModified`, a last page, a failure or a stop, the thread ends.
    """

    def __init__(self, client: HQClient, cursor: str | None, limit: int, etag: str | None,
                 stop: threading.Event, plan: Callable[[CatalogPage], PlannedPage]) -> None:
        self.client = client
        self.limit = limit
        self.stop = stop
        self.plan = plan
        self.halt = threading.Event()
        self.pages: queue.Queue[PlannedPage | NotModified | BaseException] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(target=self._run, args=(cursor, etag), name="sync-fetch", daemon=True)
        self.thread.start()

    def next(self) -> PlannedPage | NotModified:
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
                planned = page if isinstance(page, NotModified) else self.plan(page)
            except BaseException as exc:  # handed to the writer thread, raised there
                self._hand_over(exc)
                return
            self._hand_over(planned)
            if isinstance(planned, NotModified) or not planned.has_more or self.stop.is_set():
                return
            cursor, etag = planned.next_cursor, None

    def _hand_over(self, item: PlannedPage | NotModified | BaseException) -> None:
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
        self.writer = page_writer(engine)
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
        with self.engine.begin() as conn:
            gen = state_value(conn, "sync_generation")
            position = Position(None, gen + 1)
            update_state(conn, catalog_cursor=position.encode(), catalog_etag=None)
            audit(conn, "catalog_full_resync", generation=gen + 1)
        return position

    # -- walking pages ---------------------------------------------------------
    def _position(self) -> Position:
        with self.engine.connect() as conn:
            text = state_value(conn, "catalog_cursor")
        position = Position.decode(text)
        return position if position is not None else self.start_full_resync()

    def _walk(self, position: Position, rules: list[Rule], result: SyncResult) -> SyncResult:
        """Apply pages in order while a fetcher thread brings the next ones back to back.

        At most three pages are in memory (one being written, one queued, one arriving);
        the position still moves only with a committed page.
        """
        index, mark = RuleIndex(rules), position.full_generation or 0
        fetcher = PageFetcher(self.client, position.cursor, self.page_limit, self._etag_for(position), self.stop,
                              plan=lambda page: plan(page, index, mark))
        try:
            for _ in range(MAX_PAGES_PER_RUN):
                page = fetcher.next()
                if isinstance(page, NotModified):
                    result.not_modified = result.complete = True
                    self._touch_last_sync()
                    return result
                position = self._apply_page(position, page, result)
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
        with self.engine.connect() as conn:
            stored = state_value(conn, "catalog_etag")
        if not stored:
            return None
        try:
            doc = json.loads(stored)
        except ValueError:
            return None
        return doc.get("e") if doc.get("c") == (position.cursor or "") else None

    def _apply_page(self, position: Position, page: PlannedPage, result: SyncResult) -> Position:
        """Write one page and the next position in one transaction."""
        gen = position.full_generation
        next_position = Position(page.next_cursor, gen)
        finished = not page.has_more
        rows, tombstones = page.rows, page.tombstones
        with self.engine.begin() as conn:
            written = self.writer.write(conn, rows, gen)
            deleted = self._delete(conn, tombstones)
            state: dict[str, Any] = {"catalog_cursor": next_position.encode(), "catalog_etag": None}
            if finished:
                state["last_sync_at"] = utcnow()
                state["catalog_etag"] = _etag_doc(position.cursor, page)
                if gen is not None:
                    result.swept += self._sweep(conn, gen)
                    next_position = Position(page.next_cursor)
                    state.update(catalog_cursor=next_position.encode(), sync_generation=gen)
            update_state(conn, **state)
        result.upserts += len(written)
        result.unchanged += len(rows) - len(written)
        result.deletes += deleted
        self._count(len(written), len(rows) - len(written), deleted)
        if self.wants("catalog_item"):
            self._emit_changes(written, tombstones)
        return next_position

    def _emit_changes(self, written: list[Row], tombstones: list[tuple[str, int]]) -> None:
        for row in written:
            item = dict(zip(COLUMNS, row))
            self.emit("catalog_item", {"sku": item["sku"], "category": item["category"], "status": item["status"],
                                       "price_cents": item["price_cents"], "hq_price_cents": item["hq_price_cents"],
                                       "deleted": False})
        for sku, _version in tombstones:
            self.emit("catalog_item", {"sku": sku, "deleted": True})

    def _delete(self, conn: Connection, tombstones: list[tuple[str, int]]) -> int:
        deleted = 0
        for sku, version in tombstones:  # a tombstone never removes a newer version
            res = conn.execute(delete(items_t).where(items_t.c.sku == sku, items_t.c.hq_version <= version))
            deleted += res.rowcount or 0
        return deleted

    def _sweep(self, conn: Connection, gen: int) -> int:
        res = conn.execute(delete(items_t).where(items_t.c.sync_mark < gen))
        swept = res.rowcount or 0
        if swept:
            audit(conn, "catalog_swept", generation=gen, removed=swept)
        self.metrics.catalog_changes.labels("swept").inc(swept)
        return swept

    def _touch_last_sync(self) -> None:
        with self.engine.begin() as conn:
            update_state(conn, last_sync_at=utcnow())

    def _count(self, upserts: int, unchanged: int, deleted: int) -> None:
        c = self.metrics.catalog_changes
        c.labels("upsert").inc(upserts)
        c.labels("unchanged").inc(unchanged)
        c.labels("delete").inc(deleted)

    # -- price rules -----------------------------------------------------------
    def _reprice_if_rules_changed(self, rules: list[Rule]) -> None:
        fingerprint = rules_fingerprint(rules)
        if fingerprint != self.last_rules:
            changed = reprice_all(self.engine, rules)
            self.metrics.catalog_changes.labels("repriced").inc(changed)
            self.last_rules = fingerprint


def reprice_all(engine: Engine, rules: list[Rule], chunk: int = 2000) -> int:
    """Re-apply the price rules to every stored SKU, writing only the prices that change."""
    changed, after = 0, ""
    index = RuleIndex(rules)
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(items_t.c.sku, items_t.c.category, items_t.c.hq_price_cents, items_t.c.price_cents,
                       items_t.c.price_rule_id)
                .where(items_t.c.sku > after).order_by(items_t.c.sku).limit(chunk)
            ).all()
            if not rows:
                return changed
            updates = []
            for r in rows:
                price, rule_id = index.price(r.sku, r.category, r.hq_price_cents)
                if (price, rule_id) != (r.price_cents, r.price_rule_id):
                    updates.append({"b_sku": r.sku, "price_cents": price, "price_rule_id": rule_id})
            if updates:
                conn.execute(update(items_t).where(items_t.c.sku == bindparam("b_sku")), updates)
            changed += len(updates)
            after = rows[-1].sku


def catalog_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(items_t)).scalar_one()


def plan(page: CatalogPage, index: RuleIndex, mark: int) -> PlannedPage:
    """`page` as the writer takes it; the decoded items are not kept."""
    rows, tombstones = plan_page(page.items, index, mark)
    return PlannedPage(page.next_cursor, page.has_more, page.etag, not page.items, rows, tombstones)


def plan_page(entries: list[CatalogEntry], index: RuleIndex, mark: int) -> tuple[list[Row], list[tuple[str, int]]]:
    """A page as row tuples to offer the writer (hash, price and rule computed) and tombstones.

    One tight loop: a later entry for the same SKU wins; incomplete items are skipped (and
    counted in a warning), tombstones kept apart.
    """
    rows: dict[str, Row] = {}
    tombstones: list[tuple[str, int]] = []
    skipped = 0
    now = utcnow()
    sha256, price_of, hq_values = hashlib.sha256, index.price, _hq_values
    for e in entries:
        if e.deleted:
            tombstones.append((e.sku, e.version))
            continue
        if e.name is None or e.category is None or e.face_value_cents is None or e.price_cents is None \
                or e.stock_kind is None:
            skipped += 1
            continue
        price, rule_id = price_of(e.sku, e.category, e.price_cents)
        rows[e.sku] = (e.sku, e.name, e.category, e.face_value_cents, e.price_cents, price, rule_id, e.currency,
                       e.stock_kind, e.account_pattern, e.min_qty, e.max_qty, e.stock, e.stock_state, e.status,
                       e.version, sha256(repr(hq_values(e)).encode()).hexdigest(), mark, now)
    if skipped:
        log.warning("catalog page had incomplete items; skipped", extra={"count": skipped})
    return list(rows.values()), tombstones


def _etag_doc(cursor: str | None, page: PlannedPage) -> str | None:
    """Remember the ETag only for an empty last page: asking the same cursor again may get 304."""
    if not page.empty or not page.etag:
        return None
    doc = json.dumps({"c": cursor or "", "e": page.etag}, separators=(",", ":"))
    return doc if len(doc) <= 256 else None
