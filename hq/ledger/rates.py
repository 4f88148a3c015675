"""Settlement rates as data: each row is in force from its day (UTC) until a later row for the same key.

Keys: HQ's share in basis points by tier and/or category (the licence's
`revenue_share_bps` when no row matches), the annual base fee by tier, the
minimum payout and the payout fee. A new rate may only start on a future
day, so nothing already posted, and no statement already issued, changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from hq import audit
from hq.clock import iso, utcnow
from hq.models import SettlementRate
from kitcore.errors import InvalidInput
from kitcore.licence.tiers import CATEGORIES, TIERS

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hq.service import HQ

KINDS = ("share_bps", "base_fee", "min_payout", "payout_fee")
# Until an operator sets them: the seed's 5,000 a year, 100 yuan minimum, 2 yuan a transfer.
DEFAULTS = {"base_fee": 500_000, "min_payout": 10_000, "payout_fee": 200}
MAX_VALUE = 10**12


@dataclass(frozen=True)
class Rates:
    """The rates in force on one day, resolved from the rows effective by then."""

    on: date
    rows: dict[tuple[str, str | None, str | None], int]

    def share_bps(self, tier: str, category: str | None, licence_bps: int) -> int:
        """Most specific first: tier and category, category, tier, then the licence's own rate."""
        for key in (("share_bps", tier, category), ("share_bps", None, category), ("share_bps", tier, None)):
            if key in self.rows:
                return self.rows[key]
        return licence_bps

    def base_fee(self, tier: str) -> int:
        return self.rows.get(("base_fee", tier, None), self.rows.get(("base_fee", None, None), DEFAULTS["base_fee"]))

    def min_payout(self) -> int:
        return self.rows.get(("min_payout", None, None), DEFAULTS["min_payout"])

    def payout_fee(self) -> int:
        return self.rows.get(("payout_fee", None, None), DEFAULTS["payout_fee"])


_IN_FORCE = (select(SettlementRate.kind, SettlementRate.tier, SettlementRate.category, SettlementRate.value)
             .where(SettlementRate.effective_from <= bindparam("day"))
             .order_by(SettlementRate.effective_from, SettlementRate.id))  # built once: every paid order batch


def in_force(conn: "Connection", at: datetime) -> Rates:
    """The rates on the day of `at` (UTC): the latest row per key effective on or before it."""
    day = at.date()
    rows: dict[tuple[str, str | None, str | None], int] = {}
    for kind, tier, category, value in conn.execute(_IN_FORCE, {"day": day}):
        rows[(kind, tier, category)] = int(value)
    return Rates(day, rows)


def share_fen(gross_fen: int, bps: int) -> int:
    """HQ's share of a gross amount, rounded half up to the fen (integers only)."""
    return (gross_fen * bps + 5_000) // 10_000


def validate(kind: str, value: int, effective_from: date, tier: str | None, category: str | None,
             today: date) -> None:
    """One line naming what is wrong; nothing is written on a refusal."""
    if kind not in KINDS:
        raise InvalidInput(f"rate kind {kind!r} is unknown (known: {', '.join(KINDS)})")
    if tier is not None and tier not in TIERS:
        raise InvalidInput(f"tier {tier!r} is unknown (known: {', '.join(TIERS)})")
    if category is not None and category not in CATEGORIES:
        raise InvalidInput(f"category {category!r} is unknown (known: {', '.join(CATEGORIES)})")
    if category is not None and kind != "share_bps":
        raise InvalidInput(f"{kind} does not vary by category")
    if tier is not None and kind in ("min_payout", "payout_fee"):
        raise InvalidInput(f"{kind} does not vary by tier")
    top = 10_000 if kind == "share_bps" else MAX_VALUE
    if isinstance(value, bool) or not 0 <= value <= top:
        raise InvalidInput(f"{kind} must be a whole number from 0 to {top}")
    if effective_from <= today:
        raise InvalidInput(f"a rate applies from a future day, never retroactively: {effective_from} is not after "
                           f"{today}")


def set_rate(hq: "HQ", operator: str, kind: str, value: int, effective_from: date, tier: str | None = None,
             category: str | None = None) -> dict[str, Any]:
    """Add a rate from `effective_from` (after today, UTC); audited."""
    now = utcnow()
    validate(kind, value, effective_from, tier, category, now.date())
    with hq.session() as s:
        row = SettlementRate(kind=kind, tier=tier, category=category, value=value, effective_from=effective_from,
                             created_at=now, created_by=operator)
        s.add(row)
        s.flush()
        audit.record(s, operator, "settlement.rate", None, kind=kind, tier=tier, category=category, value=value,
                     effective_from=effective_from.isoformat())
        return rate_json(row)


def rate_json(row: SettlementRate) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "tier": row.tier, "category": row.category, "value": int(row.value),
            "effective_from": row.effective_from.isoformat(), "created_at": iso(row.created_at),
            "created_by": row.created_by}


def list_rates(hq: "HQ") -> list[dict[str, Any]]:
    with hq.session() as s:
        return [rate_json(r) for r in s.scalars(select(SettlementRate).order_by(
            SettlementRate.kind, SettlementRate.effective_from, SettlementRate.id))]


def tomorrow() -> date:
    return utcnow().date() + timedelta(days=1)
