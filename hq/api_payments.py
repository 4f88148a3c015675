"""The gateways' side of HQ: asynchronous payment notifications, and the page a payer returns to.

No licence or operator credential here: a notification is trusted only when
its signature verifies (hq.payments.flow.notify). A refused one answers 400
with a short word, counted in `kithq_payment_notifications_total{outcome="forged"}`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from hq.auth import get_hq_dependency as get_hq
from hq.payments import flow
from hq.payments.contract import Forged
from hq.service import HQ

router = APIRouter(prefix="/v1/payments", include_in_schema=True)
GATEWAY_NAME = r"^[a-z][a-z0-9_]{1,31}$"
MAX_PARAMS = 40


async def _params(request: Request) -> dict[str, str]:
    """The notification's fields: the query string (epay's GET) and, for a POST, the form."""
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form(max_files=0, max_fields=MAX_PARAMS)
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


@router.api_route("/{gateway}/notify", methods=["GET", "POST"], response_class=PlainTextResponse,
                  summary="A payment gateway's asynchronous notification (signed by the gateway)")
async def gateway_notify(request: Request, gateway: str = Path(..., pattern=GATEWAY_NAME),
                         hq: HQ = Depends(get_hq)) -> PlainTextResponse:
    params = await _params(request)
    if len(params) > MAX_PARAMS:
        return PlainTextResponse("fail", status_code=400)
    try:
        await run_in_threadpool(flow.notify, hq, gateway, params)
    except Forged:
        return PlainTextResponse("fail", status_code=400)
    return PlainTextResponse("success")


RETURN_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>支付完成 · Payment</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head><body>
<p>支付已提交。请回到商店的订单页面，页面会自动更新。</p>
<p>Your payment was submitted. Go back to the shop's order page; it updates by itself.</p></body></html>"""


@router.get("/return", response_class=HTMLResponse, summary="Where the gateway sends the payer back")
def payment_return() -> HTMLResponse:
    return HTMLResponse(RETURN_PAGE)
