"""Posting entries: balanced, once per (kind, source), never edited; a mistake is undone by a reversal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import insert, select, tuple_

from hq.errors import ApiError
from hq.ledger import accounts
from hq.models import LedgerEntry, LedgerLine

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Row


@dataclass(frozen=True)
class Line:
    account: str
    role: str
    amount_fen: int  # debit positive, credit negative


@dataclass(frozen=True)
class Entry:
    site_id: str
    kind: str
    source: str
    posted_at: datetime
    lines: tuple[Line, ...]
    memo: str | None = None
    operator: str | None = None
    reverses_id: int | None = field(default=None)


class Unbalanced(ValueError):
    """An entry whose debits and credits differ: a bug in the caller, never written."""


def post(conn: "Connection", entries: Sequence[Entry]) -> list[int | None]:
    """Write the entries not posted before; each one's id, or None where (kind, source) already was.

    The unique (kind, source) constraint is what guarantees it: on PostgreSQL
    the entries and their lines go in one statement that skips the ones
    already there (`ON CONFLICT DO NOTHING`), so a concurrent replay posts
    nothing twice either.
    """
    for entry in entries:
        if sum(line.amount_fen for line in entry.lines) != 0 or not entry.lines:
            raise Unbalanced(f"entry {entry.kind}:{entry.source} does not balance")
    if not entries:
        return []
    accounts.ensure(conn, {line.account for e in entries for line in e.lines})
    if conn.dialect.name == "postgresql":
        by_key = _post_pg(conn, entries)
    else:
        by_key = _post_one_by_one(conn, entries)
    return [by_key.get((e.kind, e.source)) for e in entries]


def _post_one_by_one(conn: "Connection", entries: Sequence[Entry]) -> dict[tuple[str, str], int]:
    """SQLite (in process, one writer at a time): skip what is there, insert the rest."""
    keys = [(e.kind, e.source) for e in entries]
    done = set(conn.execute(select(LedgerEntry.kind, LedgerEntry.source)
                            .where(tuple_(LedgerEntry.kind, LedgerEntry.source).in_(keys))).all())
    fresh = [e for e in entries if (e.kind, e.source) not in done]
    if not fresh:
        return {}
    ids = [row.id for row in conn.execute(insert(LedgerEntry).returning(LedgerEntry.id, sort_by_parameter_order=True), [
        {"site_id": e.site_id, "kind": e.kind, "source": e.source, "posted_at": e.posted_at, "memo": e.memo,
         "operator": e.operator, "reverses_id": e.reverses_id} for e in fresh])]
    conn.execute(insert(LedgerLine), [{"entry_id": i, "account": line.account, "role": line.role,
                                       "amount_fen": line.amount_fen} for i, e in zip(ids, fresh) for line in e.lines])
    return {(e.kind, e.source): i for e, i in zip(fresh, ids)}


_PG_POST = """
WITH new AS (
  INSERT INTO ledger_entries (site_id, kind, source, posted_at, memo, operator, reverses_id)
  SELECT * FROM unnest(%(sites)s::varchar[], %(kinds)s::varchar[], %(sources)s::varchar[],
                       %(ats)s::timestamptz[], %(memos)s::varchar[], %(operators)s::varchar[], %(reverses)s::bigint[])
  ON CONFLICT (kind, source) DO NOTHING
  RETURNING id, kind, source
), lines AS (
  INSERT INTO ledger_lines (entry_id, account, role, amount_fen)
  SELECT new.id, l.account, l.role, l.amount
  FROM new JOIN unnest(%(l_kinds)s::varchar[], %(l_sources)s::varchar[], %(accounts)s::varchar[],
                       %(roles)s::varchar[], %(amounts)s::bigint[], %(ord)s::int[])
       AS l(kind, source, account, role, amount, ord) ON l.kind = new.kind AND l.source = new.source
  ORDER BY new.id, l.ord
)
SELECT id, kind, source FROM new
"""


def _post_pg(conn: "Connection", entries: Sequence[Entry]) -> dict[tuple[str, str], int]:
    """One statement for the whole batch, its columns as arrays: a batch of 200 orders is one round trip."""
    lines = [(e.kind, e.source, x.account, x.role, x.amount_fen, n) for e in entries for n, x in enumerate(e.lines)]
    params = {
        "sites": [e.site_id for e in entries], "kinds": [e.kind for e in entries],
        "sources": [e.source for e in entries], "ats": [e.posted_at for e in entries],
        "memos": [e.memo for e in entries], "operators": [e.operator for e in entries],
        "reverses": [e.reverses_id for e in entries],
        **dict(zip(("l_kinds", "l_sources", "accounts", "roles", "amounts", "ord"), (list(c) for c in zip(*lines)))),
    }
    cursor = conn.connection.driver_connection.cursor()  # same connection, same transaction
    cursor.execute(_PG_POST, params, binary=True)  # binary arrays: no quoting of every text element
    return {(kind, source): int(i) for i, kind, source in cursor.fetchall()}


def find(conn: "Connection", kind: str, source: str) -> "Row[Any] | None":
    """The entry posted for (kind, source), as a row (id, site_id, kind, source, posted_at, …), or None."""
    table = LedgerEntry.__table__
    return conn.execute(select(table).where(table.c.kind == kind, table.c.source == source)).first()


def get(conn: "Connection", entry_id: int) -> "Row[Any] | None":
    table = LedgerEntry.__table__
    return conn.execute(select(table).where(table.c.id == entry_id)).first()


def lines_of(conn: "Connection", entry_id: int) -> list[Line]:
    rows = conn.execute(select(LedgerLine.account, LedgerLine.role, LedgerLine.amount_fen)
                        .where(LedgerLine.entry_id == entry_id).order_by(LedgerLine.id))
    return [Line(a, r, int(v)) for a, r, v in rows]


def reversal(conn: "Connection", original: "Row[Any]", kind: str, source: str, at: datetime,
             operator: str | None, memo: str | None) -> Entry:
    """The entry that undoes `original`: the same lines with the opposite sign."""
    lines = tuple(Line(x.account, x.role, -x.amount_fen) for x in lines_of(conn, original.id))
    if not lines:
        raise ApiError(404, "not_found", f"ledger entry {original.id} has no lines")
    return Entry(original.site_id, kind, source, at, lines, memo, operator, reverses_id=original.id)
