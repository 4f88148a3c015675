"""The fleet page's payments: reconciliation results and refunds for HQ, each site's payments on its page, the
operator's refund (the same hq.payments.refunds.refund as `kitctl hq payments refund`, as the logged-in operator,
behind the session's CSRF token; a refusal comes back as the page's one line) and a gateway's connection test
(hq.payments.config.test, as `kitctl hq payments test`: its one line shown, audited).

The gateways themselves (configured, enabled, payments by state) are hq.payments.config.listing on the fleet page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from hq.auth import get_hq
from hq.clock import iso
from hq.fleet_forms import acted
from hq.models import AuditEvent, Order, Payment, PaymentReconciliation
from hq.payments import config, refunds
from hq.payments.contract import GatewayError
from hq.payments.reconcile import reconciliation_json
from hq.service import HQ
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

router = APIRouter(include_in_schema=False)
ANCHOR = "payments"
RUNS_SHOWN = 14  # the latest reconciliations (two weeks of one gateway)
REFUNDS_SHOWN = 50
DIFFERENCES_SHOWN = 20  # per run on the fleet page; the CLI's --json has them all
SITE_RUNS = 60  # the reconciliations a site page looks through for differences naming the site


def context(hq: HQ) -> dict[str, Any]:
    """The section's data for the fleet page: the latest reconciliations and refunds, newest first."""
    with hq.read() as conn:  # plain rows: the fleet page reads this on every load
        runs = [_run_shown(reconciliation_json(r)) for r in conn.execute(
            select(PaymentReconciliation).order_by(PaymentReconciliation.day.desc(), PaymentReconciliation.gateway)
            .limit(RUNS_SHOWN))]
        return {"pay_reconciliations": runs, "pay_refunds": _refunds(conn, None)}


def _run_shown(run: dict[str, Any]) -> dict[str, Any]:
    return {**run, "differences": run["differences"][:DIFFERENCES_SHOWN],
            "more": max(0, len(run["differences"]) - DIFFERENCES_SHOWN)}


def _refunds(conn: "Connection", site_id: str | None) -> list[dict[str, Any]]:
    """Refunds through a gateway as the audit recorded them (who, when, why, how much)."""
    query = select(AuditEvent).where(AuditEvent.action == "payments.refund")
    if site_id is not None:
        query = query.where(AuditEvent.site_id == site_id)
    rows = conn.execute(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(REFUNDS_SHOWN))
    return [{"at": iso(e.at), "operator": e.operator, "site": e.site_id, "hq_order_id": e.detail.get("hq_order_id"),
             "amount_cents": int(e.detail.get("amount_cents") or 0), "gateway": e.detail.get("gateway"),
             "reason": str(e.detail.get("reason") or "")} for e in rows]


def site_payments(hq: HQ, site_id: str) -> dict[str, Any]:
    """One site's payments: count and amount by state, its refunds, and reconciliation differences naming it."""
    with hq.read() as conn:
        by_state = {status: {"count": int(n), "cents": int(cents or 0)} for status, n, cents in conn.execute(
            select(Payment.status, func.count(), func.sum(Payment.amount_cents))
            .join(Order, Order.id == Payment.order_pk).where(Order.site_id == site_id).group_by(Payment.status))}
        differences = [{**d, "day": run.day.isoformat(), "gateway": run.gateway}
                       for run in conn.execute(select(PaymentReconciliation)
                                            .order_by(PaymentReconciliation.day.desc()).limit(SITE_RUNS))
                       for d in run.differences if d.get("site") == site_id]
        return {"by_state": by_state, "refunds": _refunds(conn, site_id), "differences": differences[:REFUNDS_SHOWN]}


@router.post("/fleet/payments/refund")
def refund(request: Request, csrf: str = Form(..., max_length=100), hq_order_id: str = Form(..., max_length=64),
           reason: str = Form("", max_length=500), hq: HQ = Depends(get_hq)) -> Response:
    """Refund an order's payment in full through its gateway, with the operator's reason (audited)."""
    def act(operator: str) -> str:
        done = refunds.refund(hq, operator, hq_order_id.strip(), reason.strip())
        return f"order {done['hq_order_id']} refunded: {done['amount_cents'] / 100:,.2f} {done['currency']}"

    return acted(request, csrf, act, ANCHOR)


@router.post("/fleet/payments/{gateway}/test")
def test_gateway(request: Request, gateway: str = Path(..., max_length=40), csrf: str = Form(..., max_length=100),
                 hq: HQ = Depends(get_hq)) -> Response:
    """Reach a configured gateway with its stored credentials (nothing changes there); the outcome as the page's
    one line: ok with what answered, or failed with why."""
    def act(operator: str) -> str:
        try:
            return f"{gateway}: ok — {config.test(hq, operator, gateway)}"
        except GatewayError as exc:
            raise InvalidInput(f"{gateway}: failed: {exc}") from None

    return acted(request, csrf, act, ANCHOR)
