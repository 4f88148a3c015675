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

    The unique (kind, source) constraint backs the check: a concurrent replay
    fails its transaction instead of posting twice.
    """
    for entry in entries:
        if sum(line.amount_fen for line in entry.lines) != 0 or not entry.lines:
            raise Unbalanced(f"entry {entry.kind}:{entry.source} does not balance")
    keys = [(e.kind, e.source) for e in entries]
    done = set(conn.execute(select(LedgerEntry.kind, LedgerEntry.source)
                            .where(tuple_(LedgerEntry.kind, LedgerEntry.source).in_(keys))).all()) if keys else set()
    fresh = [e for e in entries if (e.kind, e.source) not in done]
    if not fresh:
        return [None] * len(entries)
    accounts.ensure(conn, {line.account for e in fresh for line in e.lines})
    ids = [row.id for row in conn.execute(insert(LedgerEntry).returning(LedgerEntry.id, sort_by_parameter_order=True), [
        {"site_id": e.site_id, "kind": e.kind, "source": e.source, "posted_at": e.posted_at, "memo": e.memo,
         "operator": e.operator, "reverses_id": e.reverses_id} for e in fresh])]
    conn.execute(insert(LedgerLine), [{"entry_id": i, "account": line.account, "role": line.role,
                                       "amount_fen": line.amount_fen} for i, e in zip(ids, fresh) for line in e.lines])
    by_key = {(e.kind, e.source): i for e, i in zip(fresh, ids)}
    return [by_key.get(k) for k in keys]


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
