"""The gateways' side of HQ: asynchronous payment notifications, and the page a payer returns to.

No licence or operator credential here: a notification is trusted only when
its signature verifies (hq.payments.flow.notify). A refused one answers 403
(404 for a gateway HQ has not configured) with the body `fail`, and is counted in
`kithq_payment_notifications_total{outcome="forged"}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from hq.auth import get_hq_dependency as get_hq
from hq.errors import responses
from hq.payments import flow
from hq.payments.contract import Forged, Notification
from hq.service import HQ

# Not in /openapi.json: these speak each gateway's own protocol (query strings and forms in, a bare word out),
# not HQ's JSON API; docs/payments.md describes them.
router = APIRouter(prefix="/v1/payments", include_in_schema=False)
GATEWAY_NAME = r"^[a-z][a-z0-9_]{1,31}$"
MAX_PARAMS = 40
MAX_BODY = 64 * 1024


async def _params(request: Request) -> Notification | None:
    """The notification: the query string (epay's GET), a POST's form (Alipay), its headers and raw body (WeChat Pay
    signs the JSON body); None when the body is larger than any gateway sends."""
    params = dict(request.query_params)
    body = b""
    if request.method == "POST":
        body = await request.body()
        if len(body) > MAX_BODY:
            return None
        form = await request.form(max_files=0, max_fields=MAX_PARAMS)
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return Notification(params, dict(request.headers), body)


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


NOTIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _text("handled (applied, a replay, held for review, or kept until its order arrives): `success`"),
    403: _text("the notification does not verify (signature, merchant, fields): `fail`, counted as forged"),
    404: _text("no gateway of this name is configured at HQ: `fail`, counted as forged"),
    **responses(422),
}


async def _notify(request: Request, gateway: str, hq: HQ) -> PlainTextResponse:
    params = await _params(request)
    if params is None or len(params) > MAX_PARAMS:
        return PlainTextResponse("fail", status_code=403)
    try:
        await run_in_threadpool(flow.notify, hq, gateway, params)
    except flow.UnknownGateway:
        return PlainTextResponse("fail", status_code=404)
    except Forged:
        return PlainTextResponse("fail", status_code=403)
    return PlainTextResponse("success")


@router.get("/{gateway}/notify", response_model=None, responses=NOTIFY_RESPONSES,
            summary="A payment gateway's asynchronous notification, as a query string (epay)")
async def gateway_notify_get(request: Request, gateway: str = Path(..., pattern=GATEWAY_NAME),
                             hq: HQ = Depends(get_hq)) -> PlainTextResponse:
    return await _notify(request, gateway, hq)


@router.post("/{gateway}/notify", response_model=None, responses=NOTIFY_RESPONSES,
             summary="A payment gateway's asynchronous notification, as a form (Alipay) or a signed JSON body (WeChat Pay)")
async def gateway_notify_post(request: Request, gateway: str = Path(..., pattern=GATEWAY_NAME),
                              hq: HQ = Depends(get_hq)) -> PlainTextResponse:
    return await _notify(request, gateway, hq)


RETURN_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>支付完成 · Payment</title>
<meta name="viewport" content="width=device-width,initial-scale=1"></head><body>
<p>支付已提交。请回到商店的订单页面，页面会自动更新。</p>
<p>Your payment was submitted. Go back to the shop's order page; it updates by itself.</p></body></html>"""


@router.get("/return", response_class=HTMLResponse, summary="Where the gateway sends the payer back")
def payment_return() -> HTMLResponse:
    return HTMLResponse(RETURN_PAGE)
