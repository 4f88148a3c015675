"""'Tell me when it is back': a buyer leaves an e-mail address on a sold-out product.

The address is sealed with the site key (sitedb.buyer, bound to the row id) and waits in
`restock_requests` until the agent passes it to HQ, which mails once when the SKU is back
(docs/partners.md). A bad address is one line on the page and nothing is stored.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy import insert
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kitcore import mailaddr
from sitedb.buyer import Buyer
from sitedb.tables import restock_requests
from storefront.i18n import translator
from storefront.shop import _item_or_404, _product_page
from storefront.web import HTTPProblem, check_csrf, client_ip, locale_of, shop_of

router = APIRouter()


@router.post("/p/{sku}/notify", name="restock")
async def notify(request: Request, sku: str) -> Response:
    form = dict((await request.form()).items())
    check_csrf(request, form)
    return await run_in_threadpool(_notify, request, sku, str(form.get("email", "")))


def _notify(request: Request, sku: str, email: str) -> Response:
    shop = shop_of(request)
    t = translator(locale_of(request))
    item = _item_or_404(request, sku)
    if item.in_stock:
        return _product_page(request, item, errors={"form": t("notify.in_stock")}, status=409)
    if not mailaddr.valid(email.strip()):
        return _product_page(request, item, errors={"notify": t("notify.bad_email")}, status=422)
    if shop.buyers is None:  # buyer data is only ever stored sealed
        return _product_page(request, item, errors={"form": t("checkout.no_site_key")}, status=503)
    if not shop.limits.checkout_ip.hit(client_ip(request)):
        raise HTTPProblem(429, "err.too_many")
    row_id = str(uuid.uuid4())
    with shop.sessions.begin() as session:
        session.execute(insert(restock_requests).values(
            id=row_id, sku=item.sku, email_sealed=shop.buyers.seal(f"restock:{row_id}", Buyer(contact=email.strip()))))
    return _product_page(request, item, errors={"notify_ok": t("notify.saved")})
