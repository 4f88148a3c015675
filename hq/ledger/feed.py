"""The site's own ledger entries as a feed the agent copies into the site database.

The site's revenue page, finance page and exit export show HQ's figures, not
figures the site works out again: each entry is one row with the statement
CSV's columns (gross, HQ cost, HQ share, fees, adjustment, payout, net), from
the site's side. Entries are never edited, so a copy once taken stays right.

The cursor is an entry id. Ids are handed out when an entry is inserted, but
a transaction may commit after one that inserted later, so an entry can
appear below a cursor already given out. The cursor therefore only moves past
entries posted more than `SETTLE` ago (no posting transaction stays open that
long); newer ones are in the page too, and come again on the next read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hq.clock import aware, utcnow
from hq.ledger import accounts
from hq.ledger.statements import COLUMNS, column_sums
from hq.models import LedgerEntry, LedgerLine

if TYPE_CHECKING:
    from hq.service import HQ

SETTLE = timedelta(minutes=5)
MAX_LIMIT = 1000


def entries_after(hq: "HQ", site_id: str, after: int, limit: int) -> dict[str, Any]:
    """Up to `limit` of the site's entries with id above `after`, in id order; the cursor to continue from."""
    account = accounts.site_account(site_id)
    query = (select(LedgerEntry.id, LedgerEntry.posted_at, LedgerEntry.kind, LedgerEntry.source, LedgerEntry.memo,
                    *column_sums(account))
             .join(LedgerLine, LedgerLine.entry_id == LedgerEntry.id)
             .where(LedgerEntry.site_id == site_id, LedgerLine.account == account, LedgerEntry.id > after)
             .group_by(LedgerEntry.id, LedgerEntry.posted_at, LedgerEntry.kind, LedgerEntry.source, LedgerEntry.memo)
             .order_by(LedgerEntry.id).limit(limit))
    with hq.read() as conn:
        rows = conn.execute(query).all()
    settled_before = utcnow() - SETTLE
    next_after = after
    for row in rows:
        if aware(row.posted_at) >= settled_before:
            break
        next_after = int(row.id)
    return {"entries": [_entry_json(row) for row in rows], "next_after": next_after, "has_more": len(rows) == limit}


def _entry_json(row: Any) -> dict[str, Any]:
    return {"id": int(row.id), "posted_at": _stamp(row.posted_at), "kind": row.kind, "source": row.source,
            "reference": row.memo, **{f"{c}_fen": int(getattr(row, c)) for c in COLUMNS}, "net_fen": int(row.net)}


def _stamp(value: Any) -> str:
    """Microseconds kept: the site files an entry into a statement's period by this instant."""
    return aware(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

