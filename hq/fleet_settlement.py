"""The fleet page's settlement section: issue a site's statement, see the sites' answers, resolve a dispute by
adjustment, decide payouts, download a statement as CSV or PDF.

Every action is one of hq.ledger's functions (the same as the API and
`kitctl hq settle`), run as the logged-in operator, behind the session's
CSRF token; a refusal comes back as the page's one-line error.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from hq.auth import get_hq
from hq.fleet_forms import acted, session_of
from hq.ledger import payouts, statements
from hq.service import HQ
from kitcore.errors import InvalidInput

router = APIRouter(include_in_schema=False)
ANCHOR = "settlement"
YUAN = re.compile(r"^[+-]?\d{1,10}(?:\.\d{1,2})?\Z")
StatementId = Path(..., ge=1, le=2**31 - 1)
PayoutId = Path(..., ge=1, le=2**31 - 1)
SHOWN = 50


def state_of(statement: dict[str, Any]) -> str:
    """What the page says: the site's answer, or that HQ waits for one."""
    return statement["response"] or "awaiting answer"


def context(hq: HQ) -> dict[str, Any]:
    """The section's data for the fleet page: recent statements, payouts waiting. The site to issue for is typed
    (with 10,000 sites a list of them all was most of the page's time and size)."""
    recent = statements.list_statements(hq, limit=SHOWN)
    for statement in recent:
        statement["state"] = state_of(statement)
    return {"settle_statements": recent,
            "settle_payouts": payouts.list_payouts(hq, status="requested", limit=SHOWN)}


def fen_of_yuan(text: str) -> int:
    """`-12.34` → -1234; an empty text is no adjustment (0)."""
    text = text.strip().replace(",", "")
    if not text:
        return 0
    if not YUAN.match(text):
        raise InvalidInput("the adjustment is an amount in yuan, like 12.34 or -5 (at most two decimals)")
    sign = -1 if text.startswith("-") else 1
    whole, _, cents = text.lstrip("+-").partition(".")
    return sign * (int(whole) * 100 + int((cents + "00")[:2]))


def _run(request: Request, csrf: str, action: Callable[[str], str]) -> RedirectResponse:
    """The action as the session's operator; its message, or the refusal as one line."""
    return acted(request, csrf, action, ANCHOR)


@router.post("/fleet/settlement/issue")
def issue(request: Request, csrf: str = Form(..., max_length=100), site: str = Form(..., max_length=63),
          cadence: str = Form("", max_length=16), day: str = Form("", max_length=10),
          hq: HQ = Depends(get_hq)) -> Response:
    def act(operator: str) -> str:
        if cadence not in ("", *statements.CADENCES):
            raise InvalidInput(f"cadence must be one of: {', '.join(statements.CADENCES)}")
        try:
            when = date.fromisoformat(day) if day else None
        except ValueError:
            raise InvalidInput(f"day must be a date YYYY-MM-DD, not {day!r}") from None
        issued = statements.issue(hq, operator, site, cadence or None, when)
        return (f"statement {issued['id']} for {site}, {issued['period_start']}..{issued['period_end']}: "
                f"closing {issued['totals']['closing'] / 100:,.2f} yuan")

    return _run(request, csrf, act)


@router.post("/fleet/settlement/statements/{statement_id}/resolve")
def resolve(request: Request, statement_id: int = StatementId, csrf: str = Form(..., max_length=100),
            note: str = Form("", max_length=1000), adjustment: str = Form("", max_length=20),
            hq: HQ = Depends(get_hq)) -> Response:
    def act(operator: str) -> str:
        fen = fen_of_yuan(adjustment)
        done = statements.resolve(hq, operator, statement_id, note, fen or None)
        return f"statement {done['id']} ({done['site']}) resolved" + (f", adjustment {fen / 100:,.2f} yuan" if fen else "")

    return _run(request, csrf, act)


@router.post("/fleet/settlement/payouts/{payout_id}/{decision}")
def decide(request: Request, payout_id: int = PayoutId, decision: str = Path(..., pattern="^(approve|reject)$"),
           csrf: str = Form(..., max_length=100), transfer_ref: str = Form("", max_length=128),
           reason: str = Form("", max_length=500), hq: HQ = Depends(get_hq)) -> Response:
    """Approve with the transfer reference (the payout and its fee are posted), or reject with a reason."""
    def act(operator: str) -> str:
        if decision == "approve":
            done = payouts.approve(hq, operator, payout_id, transfer_ref.strip())
            return f"payout {done['id']} ({done['site']}) approved: {done['transfer_ref']}"
        done = payouts.reject(hq, operator, payout_id, reason.strip())
        return f"payout {done['id']} ({done['site']}) rejected"

    return _run(request, csrf, act)


@router.get("/fleet/settlement/statements/{statement_id}/{kind}")
def download(request: Request, statement_id: int = StatementId, kind: str = Path(..., pattern="^(csv|pdf)$"),
             hq: HQ = Depends(get_hq)) -> Response:
    if session_of(request) is None:
        return RedirectResponse("/fleet/login", status_code=303)
    meta = statements.get(hq, statement_id)
    data = statements.csv_bytes(hq, statement_id) if kind == "csv" else statements.pdf_bytes(hq, statement_id)
    name = f"statement-{meta['site']}-{meta['period_start']}-{meta['cadence']}.{kind}"
    media = "text/csv; charset=utf-8" if kind == "csv" else "application/pdf"
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
