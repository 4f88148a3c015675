"""Stock warnings over HTTP: operators set thresholds; sites pass on buyers' back-in-stock requests;
the mail's unsubscribe link (public)."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Depends, Form, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import Field

from hq import restock, stock
from hq.auth import SiteCaller, get_hq, operator, site_active
from hq.auth import get_hq_dependency
from hq.errors import responses
from hq.fields import SKU_PATTERN, integer
from hq.schemas import Strict
from hq.service import HQ
from kitcore import mailaddr

admin_router = APIRouter(prefix="/v1/admin/stock", tags=["admin"])
router = APIRouter(prefix="/v1/restock", tags=["stock"])
SkuPath = Path(..., pattern=SKU_PATTERN)
SECRET_PATTERN = r"^[0-9a-f]{32}$"  # pydantic's: `$` is the very end


class Threshold(Strict):
    threshold: integer(0, stock.MAX_THRESHOLD) | None = Field(  # type: ignore[valid-type]
        description="warn below this many available keys; null: the default; 0: never")


class DefaultThreshold(Strict):
    threshold: integer(0, stock.MAX_THRESHOLD)  # type: ignore[valid-type]


class RestockIn(Strict):
    sku: str = Field(pattern=SKU_PATTERN)
    email: str = Field(max_length=mailaddr.MAX_LENGTH, pattern=mailaddr.PATTERN)


@admin_router.get("", summary="Card-key SKUs: stock, low-stock threshold and state", responses=responses(401))
def get_levels(op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return stock.listing(hq)


@admin_router.put("/default", summary="The low-stock threshold of SKUs without their own",
                  responses=responses(401, 413, 422))
def put_default(body: DefaultThreshold, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return stock.set_default(hq, op, body.threshold)


@admin_router.put("/{sku}", summary="A SKU's own low-stock threshold (null: back to the default)",
                  responses=responses(401, 404, 409, 413, 422, notes={409: "`not_card_key`: a direct top-up"}))
def put_threshold(body: Threshold, sku: str = SkuPath, op: str = Depends(operator),
                  hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return stock.set_threshold(hq, op, sku, body.threshold)


@router.post("", status_code=202, summary="A buyer asks to be mailed once when a SKU is back in stock",
             responses=responses(401, 403, 404, 413, 422, 429))
def post_restock(body: RestockIn, caller: SiteCaller = Depends(site_active),
                 hq: HQ = Depends(get_hq_dependency)) -> dict[str, Any]:
    return restock.subscribe(hq, body.sku, body.email)


_PAGE = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kitctl</title></head>"
         "<body><main>{}</main></body></html>")


# The mail's link: a page for a browser, not part of the API's schema (like the fleet pages).
@router.get("/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(r: int = Query(..., ge=1, le=2**31 - 1), s: str = Query(..., pattern=SECRET_PATTERN)) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(
        f"<form method=\"post\" action=\"/v1/restock/unsubscribe\"><input type=\"hidden\" name=\"r\" value=\"{r}\">"
        f"<input type=\"hidden\" name=\"s\" value=\"{escape(s)}\">"
        "<p>Stop the back-in-stock mail? / 退订到货通知？</p><button type=\"submit\">Unsubscribe / 退订</button></form>"))


@router.post("/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe(r: int = Form(..., ge=1, le=2**31 - 1), s: str = Form(..., pattern=SECRET_PATTERN),
                hq: HQ = Depends(get_hq)) -> HTMLResponse:
    if not restock.unsubscribe(hq, r, s):
        return HTMLResponse(_PAGE.format("<p>This link is not valid. / 链接无效。</p>"), status_code=404)
    return HTMLResponse(_PAGE.format("<p>Unsubscribed: no mail will be sent. / 已退订。</p>"))
