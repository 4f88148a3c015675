"""Ledger accounts and balances: one account per site, HQ's own accounts, nothing stored that lines can derive.

Amounts are integer fen; a debit is positive, a credit negative. A site's
account is credit-normal: its balance (what HQ owes the site) is minus the
sum of its lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from sqlalchemy import bindparam, func, select

from hq.clock import utcnow
from hq.models import LedgerAccount, LedgerLine

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

CLEARING = "hq:clearing"  # buyers' money HQ received as merchant of record
COST = "hq:cost"  # HQ's price of the goods sold
SHARE = "hq:share"  # HQ's revenue share
FEES = "hq:fees"  # base fees and payout fees
ADJUSTMENTS = "hq:adjustments"  # operators' corrections
BANK = "hq:bank"  # money HQ transferred to sites
HQ_ACCOUNTS = (CLEARING, COST, SHARE, FEES, ADJUSTMENTS, BANK)


def site_account(site_id: str) -> str:
    return f"site:{site_id}"


_KNOWN = select(LedgerAccount.code).where(LedgerAccount.code.in_(bindparam("codes", expanding=True)))  # built once


def ensure(conn: "Connection", codes: Iterable[str]) -> None:
    """Create the accounts that do not exist yet (in the caller's transaction)."""
    wanted = set(codes)
    known = set(conn.scalars(_KNOWN, {"codes": sorted(wanted)}))
    missing = sorted(wanted - known)
    if missing:
        now = utcnow()
        conn.execute(_insert_new(conn.dialect.name), [
            {"code": c, "site_id": c.split(":", 1)[1] if c.startswith("site:") else None, "created_at": now}
            for c in missing])


def _insert_new(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING: two first orders of a site at once both find its account missing."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(LedgerAccount).on_conflict_do_nothing(index_elements=["code"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(LedgerAccount).on_conflict_do_nothing(index_elements=["code"])


def site_balance(conn: "Connection", site_id: str) -> int:
    """What HQ owes the site now, in fen (negative: the site owes HQ)."""
    total = conn.scalar(select(func.coalesce(func.sum(LedgerLine.amount_fen), 0))
                        .where(LedgerLine.account == site_account(site_id)))
    return -int(total or 0)


@dataclass(frozen=True)
class TrialBalance:
    """Debits, credits, and entries whose own lines do not sum to zero (there must be none)."""

    debits: int
    credits: int
    unbalanced_entries: tuple[int, ...]

    @property
    def balanced(self) -> bool:
        return self.debits == self.credits and not self.unbalanced_entries


def trial_balance(conn: "Connection") -> TrialBalance:
    """The check that proves debits equal credits, over the whole ledger and entry by entry."""
    positive = func.coalesce(func.sum(LedgerLine.amount_fen).filter(LedgerLine.amount_fen > 0), 0)
    negative = func.coalesce(func.sum(LedgerLine.amount_fen).filter(LedgerLine.amount_fen < 0), 0)
    debits, credits = conn.execute(select(positive, negative)).one()
    bad = conn.scalars(select(LedgerLine.entry_id).group_by(LedgerLine.entry_id)
                       .having(func.sum(LedgerLine.amount_fen) != 0).order_by(LedgerLine.entry_id).limit(100))
    return TrialBalance(int(debits), -int(credits), tuple(int(i) for i in bad))


def balances(conn: "Connection") -> dict[str, int]:
    """Every account's balance as the sum of its lines (debit positive)."""
    rows = conn.execute(select(LedgerLine.account, func.sum(LedgerLine.amount_fen)).group_by(LedgerLine.account))
    return {code: int(total) for code, total in rows}
