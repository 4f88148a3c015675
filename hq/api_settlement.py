"""Settlement endpoints: the site reads its statements, answers them and asks for payouts; operators decide.

Sites authenticate with their licence token, as for every site endpoint
(a revoked licence is refused; a suspended site still settles), and see only
their own statements and payouts. Operators use their bearer token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from hq.auth import SiteCaller, get_hq, operator, site_active
from hq.errors import responses
from hq.fields import SITE_ID_PATTERN
from hq.ledger import feed, payouts, statements
from hq.ledger.schemas import (BalanceOut, CadenceOut, CadenceSet, Confirm, Dispute, DisputeResolve, EntryPage, PayoutApprove, PayoutOut,
                               PayoutReject, PayoutRequest, StatementIssue, StatementOut)
from hq.service import HQ

site_router = APIRouter(prefix="/v1/settlement", tags=["settlement"])
admin_router = APIRouter(prefix="/v1/admin/settlement", tags=["admin"])
StatementId = Path(..., ge=1, le=2**31 - 1)
PayoutId = Path(..., ge=1, le=2**31 - 1)
PDF_NOTE = "The CSV's figures and lines (at most 5,000) rendered in Chinese and English (docs/settlement.md)"
CSV_NOTE = "UTF-8 with BOM, CRLF: the summary, a blank line, then one line per ledger entry (docs/settlement.md)"


@site_router.get("/balance", response_model=BalanceOut, summary="The site's balance, what it may withdraw, payout terms",
                 responses=responses(401, 403, 404, 429))
def site_balance(caller: SiteCaller = Depends(site_active), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return payouts.balance(hq, caller.site_id)


@site_router.get("/entries", response_model=EntryPage,
                 summary="The site's ledger entries after a cursor, in the order posted (the agent keeps a copy)",
                 responses=responses(401, 403, 422, 429))
def site_entries(after: int = Query(default=0, ge=0, le=2**62), limit: int = Query(default=500, ge=1, le=feed.MAX_LIMIT),
                 caller: SiteCaller = Depends(site_active), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return feed.entries_after(hq, caller.site_id, after, limit)


@site_router.get("/statements", response_model=list[StatementOut], summary="The site's issued statements, newest first",
                 responses=responses(401, 403, 429))
def site_statements(caller: SiteCaller = Depends(site_active), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return statements.list_statements(hq, caller.site_id)


@site_router.get("/statements/{statement_id}", response_model=StatementOut, summary="One of the site's statements",
                 responses=responses(401, 403, 404, 422, 429))
def site_statement(statement_id: int = StatementId, caller: SiteCaller = Depends(site_active),
                   hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return statements.get(hq, statement_id, caller.site_id)


@site_router.get("/statements/{statement_id}/csv", summary="A statement as CSV (byte-identical every time)",
                 response_class=Response, responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                                           "description": CSV_NOTE},
                                                     **responses(401, 403, 404, 409, 422, 429)})
def site_statement_csv(statement_id: int = StatementId, caller: SiteCaller = Depends(site_active),
                       hq: HQ = Depends(get_hq)) -> Response:
    return _csv(hq, statement_id, caller.site_id)


@site_router.get("/statements/{statement_id}/pdf", summary="A statement as PDF (byte-identical every time)",
                 response_class=Response, responses={200: {"content": {"application/pdf": {"schema": {"type": "string"}}},
                                                           "description": PDF_NOTE},
                                                     **responses(401, 403, 404, 409, 422, 429)})
def site_statement_pdf(statement_id: int = StatementId, caller: SiteCaller = Depends(site_active),
                       hq: HQ = Depends(get_hq)) -> Response:
    return _pdf(hq, statement_id, caller.site_id)


@site_router.post("/statements/{statement_id}/confirm", response_model=StatementOut,
                  summary="The site's finance role confirms the statement (once)",
                  responses=responses(401, 403, 404, 409, 413, 422, 429))
def site_confirm(body: Confirm, statement_id: int = StatementId, caller: SiteCaller = Depends(site_active),
                 hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return statements.respond(hq, caller.site_id, statement_id, "confirmed", body.comment)


@site_router.post("/statements/{statement_id}/dispute", response_model=StatementOut,
                  summary="The site's finance role disputes the statement, saying why (once)",
                  responses=responses(401, 403, 404, 409, 413, 422, 429))
def site_dispute(body: Dispute, statement_id: int = StatementId, caller: SiteCaller = Depends(site_active),
                 hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return statements.respond(hq, caller.site_id, statement_id, "disputed", body.comment)


@site_router.get("/payouts", response_model=list[PayoutOut], summary="The site's payouts, newest first",
                 responses=responses(401, 403, 429))
def site_payouts(caller: SiteCaller = Depends(site_active), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return payouts.list_payouts(hq, caller.site_id)


@site_router.post("/payouts", response_model=PayoutOut, summary="Ask for a withdrawal (minimum and fee applied)",
                  responses=responses(401, 403, 409, 413, 422, 429, notes={
                      409: "`below_minimum`, `insufficient_balance` (amount and fee exceed what is available), "
                           "`request_conflict` (this request_id was used for another amount)"}))
def site_payout_request(body: PayoutRequest, caller: SiteCaller = Depends(site_active),
                        hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return payouts.request(hq, caller.site_id, body.request_id, body.amount_fen)


# -- operators -------------------------------------------------------------------

@admin_router.post("/statements", response_model=StatementOut,
                   summary="Issue a site's statement for an ended week or month (again: the same statement)",
                   responses=responses(401, 404, 409, 413, 422, notes={409: "`period_open`: the period has not ended"}))
def issue_statement(body: StatementIssue, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return statements.issue(hq, op, body.site, body.cadence, body.day)


@admin_router.put("/sites/{site}/cadence", response_model=CadenceOut,
                  summary="Set the period a site's statements cover from now on (issued ones keep theirs)",
                  responses=responses(401, 404, 413, 422))
def set_cadence(body: CadenceSet, site: str = Path(..., pattern=SITE_ID_PATTERN), op: str = Depends(operator),
                hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return statements.set_cadence(hq, op, site, body.cadence)


@admin_router.get("/statements", response_model=list[StatementOut], summary="Issued statements, newest first",
                  responses=responses(401, 422))
def list_statements(site: str | None = Query(default=None, pattern=SITE_ID_PATTERN), op: str = Depends(operator),
                    hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return statements.list_statements(hq, site)


@admin_router.get("/statements/{statement_id}/csv", summary="A statement as CSV", response_class=Response,
                  responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": CSV_NOTE},
                             **responses(401, 404, 409, 422)})
def statement_csv(statement_id: int = StatementId, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> Response:
    return _csv(hq, statement_id, None)


@admin_router.get("/statements/{statement_id}/pdf", summary="A statement as PDF", response_class=Response,
                  responses={200: {"content": {"application/pdf": {"schema": {"type": "string"}}},
                                   "description": PDF_NOTE}, **responses(401, 404, 409, 422)})
def statement_pdf(statement_id: int = StatementId, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> Response:
    return _pdf(hq, statement_id, None)


@admin_router.post("/statements/{statement_id}/resolve", response_model=StatementOut,
                   summary="Resolve a disputed statement, with an adjustment posted now if needed",
                   responses=responses(401, 404, 409, 413, 422))
def resolve_dispute(body: DisputeResolve, statement_id: int = StatementId, op: str = Depends(operator),
                    hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return statements.resolve(hq, op, statement_id, body.note, body.adjustment_fen or None)


@admin_router.get("/payouts", response_model=list[PayoutOut], summary="Payouts, newest first",
                  responses=responses(401, 422))
def list_payouts(site: str | None = Query(default=None, pattern=SITE_ID_PATTERN),
                 status: str | None = Query(default=None, pattern="^(requested|approved|rejected)$"),
                 op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return payouts.list_payouts(hq, site, status)


@admin_router.post("/payouts/{payout_id}/approve", response_model=PayoutOut,
                   summary="Record the transfer of a requested payout (posts it to the ledger)",
                   responses=responses(401, 404, 409, 413, 422))
def approve_payout(body: PayoutApprove, payout_id: int = PayoutId, op: str = Depends(operator),
                   hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return payouts.approve(hq, op, payout_id, body.transfer_ref)


@admin_router.post("/payouts/{payout_id}/reject", response_model=PayoutOut, summary="Refuse a requested payout",
                   responses=responses(401, 404, 409, 413, 422))
def reject_payout(body: PayoutReject, payout_id: int = PayoutId, op: str = Depends(operator),
                  hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return payouts.reject(hq, op, payout_id, body.reason)


def _csv(hq: HQ, statement_id: int, site_id: str | None) -> Response:
    data = statements.csv_bytes(hq, statement_id, site_id)
    meta = statements.get(hq, statement_id, site_id)
    name = f"statement-{meta['site']}-{meta['period_start']}-{meta['cadence']}.csv"
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "ETag": f'"{meta["csv_sha256"]}"'})


def _pdf(hq: HQ, statement_id: int, site_id: str | None) -> Response:
    data = statements.pdf_bytes(hq, statement_id, site_id)
    meta = statements.get(hq, statement_id, site_id)
    name = f"statement-{meta['site']}-{meta['period_start']}-{meta['cadence']}.pdf"
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
