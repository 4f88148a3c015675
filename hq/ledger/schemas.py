"""Bodies of the settlement endpoints (they make /openapi.json): every rule a client can check is in the schema."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from hq.fields import SITE_ID_PATTERN, integer

# one line of text with at least one character other than a space
NOTE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
COMMENT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
DATE_PATTERN = r"^2[01][0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
MAX_FEN = 10**12


def _date_text(value: Any) -> Any:
    if not isinstance(value, str) or not re.match(DATE_PATTERN, value):
        raise ValueError("must be a date YYYY-MM-DD between the years 2000 and 2199")
    return value


Day = Annotated[date, BeforeValidator(_date_text), WithJsonSchema({"type": "string", "format": "date",
                                                                   "pattern": DATE_PATTERN})]
Note = Annotated[str, Field(min_length=1, max_length=500, pattern=NOTE_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Confirm(Strict):
    comment: Annotated[str, Field(max_length=1000, pattern=COMMENT_PATTERN)] | None = None


class Dispute(Strict):
    comment: Annotated[str, Field(min_length=1, max_length=1000, pattern=NOTE_PATTERN)]


class PayoutRequest(Strict):
    request_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$",
                                     description="the site's own id for this request; the same id again answers "
                                                 "the first request")]
    amount_fen: integer(1, MAX_FEN)  # type: ignore[valid-type]


class PayoutApprove(Strict):
    transfer_ref: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/#-]{1,128}$",
                                       description="the bank or gateway reference of the transfer")]


class PayoutReject(Strict):
    reason: Note


class StatementIssue(Strict):
    site: Annotated[str, Field(pattern=SITE_ID_PATTERN)]
    cadence: Literal["weekly", "monthly"] | None = Field(default=None, description="default: the site's own cadence")
    day: Day | None = Field(default=None, description="any day of the period; the period must have ended (UTC); "
                                                      "default: the last period that has ended")


class CadenceSet(Strict):
    cadence: Literal["weekly", "monthly"]


class CadenceOut(BaseModel):
    site: str
    cadence: Literal["weekly", "monthly"]


class DisputeResolve(Strict):
    note: Note
    adjustment_fen: integer(-MAX_FEN, MAX_FEN) = Field(  # type: ignore[valid-type]
        default=0, description="credit (positive) or debit (negative) to the site, posted now; 0 for none")


class Totals(BaseModel):
    opening: int
    orders_gross: int
    refunds_gross: int
    hq_cost: int
    hq_share: int
    fees: int
    adjustments: int
    payouts: int
    closing: int


class StatementOut(BaseModel):
    id: int
    site: str
    cadence: Literal["weekly", "monthly"]
    period_start: date
    period_end: date = Field(description="exclusive")
    totals: Totals = Field(description="fen, from the site's side: what HQ owes it")
    csv_sha256: str
    issued_at: str
    issued_by: str
    response: Literal["confirmed", "disputed", "resolved"] | None
    comment: str | None
    responded_at: str | None
    resolution: str | None


class PayoutOut(BaseModel):
    id: int
    site: str
    request_id: str
    amount_fen: int
    fee_fen: int
    status: Literal["requested", "approved", "rejected"]
    requested_at: str
    decided_at: str | None
    decided_by: str | None
    transfer_ref: str | None
    reason: str | None


class BalanceOut(BaseModel):
    site: str
    balance_fen: int
    pending_fen: int
    available_fen: int
    min_payout_fen: int
    payout_fee_fen: int


class EntryOut(BaseModel):
    """One ledger entry from the site's side: the statement CSV's line, unquoted."""

    id: int
    posted_at: str = Field(description="UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`: a statement holds the entries of its period")
    kind: Literal["order", "refund", "base_fee", "adjustment", "reversal", "payout", "payout_fee"]
    source: str
    reference: str | None = Field(description="the site's order id for orders; the reason or transfer reference")
    gross_fen: int
    hq_cost_fen: int
    hq_share_fen: int
    fees_fen: int
    adjustment_fen: int
    payout_fen: int
    net_fen: int = Field(description="the sum of the amounts: what the entry moves to (+) or from (-) the site")


class EntryPage(BaseModel):
    entries: list[EntryOut]
    next_after: int = Field(description="continue from here next time: entries posted in the last minutes are "
                                        "returned again until no earlier entry can still appear")
    has_more: bool
