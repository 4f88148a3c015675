"""Site endpoints of the HQ API: keys, catalog, orders, heartbeat."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from hq import catalog, heartbeat_api, orders, orders_api, push_api, rollouts, support
from hq.auth import SiteCaller, site_active, site_ordering
from hq.auth import get_hq_dependency as get_hq
from hq.errors import ApiError, responses
from hq.fields import ORDER_ID_PATTERN
from hq.schemas import (CatalogPage, HeartbeatIn, HeartbeatOut, OrderBatch, OrderIds, OrderResult, OrderResults,
                        UpgradeReport)
from hq.service import HQ

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # a support bundle request id
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"  # unpadded base64url, as `catalog.encode_cursor` writes it
router = APIRouter(prefix="/v1")


@router.get("/keys", summary="HQ's public signing keys (JWKS)")
def get_keys(hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return hq.keys.jwks()


@router.get("/catalog", response_model=CatalogPage, summary="Catalog changes since a cursor",
            responses={304: {"description": "Not modified (If-None-Match matched)"},
                       **responses(401, 403, 410, 422, 429, notes={
                           410: "also for a well-formed cursor HQ did not write or that comes from another HQ database"})})
def get_catalog(
    request: Request,
    cursor: str | None = Query(default=None, pattern=CURSOR_PATTERN,
                               description="`next_cursor` of the previous page; one HQ cannot continue from is 410"),
    limit: int = Query(default=500, ge=1, le=1000),
    caller: SiteCaller = Depends(site_active),
    hq: HQ = Depends(get_hq),
) -> Response:
    body, tag = catalog.render(catalog.feed(hq, list(caller.categories), cursor, limit))
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    return Response(body, media_type="application/json", headers={"ETag": tag})


@router.post("/orders", response_model=OrderResults, summary="Submit one order or a batch (idempotent)",
             responses=responses(401, 403, 409, 413, 422, 429, 503, notes={
                 409: "`idempotency_in_flight`: the first request with this key is still running (`Retry-After`)",
                 422: "`idempotency_conflict`: this key, or an order_id, was sent before with another body; "
                      "`duplicate_order_id`: the batch names an order_id twice; "
                      "`total_above_list_price`: an order's total_cents is above unit_price_cents × quantity"}))
def post_orders(
    batch: OrderBatch,
    idempotency_key: str = Header(..., alias="Idempotency-Key", min_length=1, max_length=orders_api.KEY_MAX_LENGTH,
                                  pattern=f"^{orders_api.KEY_CHARACTERS}+$"),
    caller: SiteCaller = Depends(site_ordering),
    hq: HQ = Depends(get_hq),
) -> Response:
    """Served by `hq.orders_api.handle` ahead of routing when well-formed; here for the rest, and documented."""
    return orders_api.submitted(hq, caller, idempotency_key, batch)


@router.post("/order-status", response_model=OrderResults,
             summary="Many orders' decisions at once (the agent's orders awaiting review or payment)",
             description="The orders HQ knows among `order_ids`, in the order asked; one it does not know is "
                         "left out. One request instead of one `GET /v1/orders/{order_id}` per order.",
             responses=responses(401, 403, 413, 422, 429))
def post_orders_status(body: OrderIds, caller: SiteCaller = Depends(site_active),
                       hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return {"results": orders.statuses(hq, caller.site_id, body.order_ids)}


@router.get("/orders/{order_id}", response_model=OrderResult, summary="One order's decision (review outcome)",
            responses=responses(401, 403, 404, 422, 429))
def get_order(order_id: str = Path(..., pattern=ORDER_ID_PATTERN), caller: SiteCaller = Depends(site_active),
              hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return orders.get_order(hq, caller.site_id, order_id)


HEARTBEAT_BODY = {"required": True, "content": {"application/json": {"schema": HeartbeatIn.model_json_schema()}}}


@router.post("/heartbeat", response_model=HeartbeatOut, summary="Report health; receive licence status and commands",
             openapi_extra={"requestBody": HEARTBEAT_BODY}, responses=responses(401, 413, 422, 429))
async def post_heartbeat(request: Request) -> Response:
    """Body `HeartbeatIn`; answers revoked, suspended and expired sites too. Served by `hq.heartbeat_api`."""
    return await heartbeat_api.handle(request)


@router.get("/commands/wait", response_model=HeartbeatOut, summary="Push channel: wait for the site's next commands",
            responses=responses(401, 422, 429))
async def wait_for_commands(
    request: Request,
    after: int = Query(default=0, ge=0, le=push_api.MAX_SEQ, description="the last command sequence the site applied"),
    wait: int = Query(default=push_api.DEFAULT_WAIT_SECONDS, ge=0, le=push_api.MAX_WAIT_SECONDS,
                      description="seconds to hold the request when nothing is pending (HQ may hold it less)"),
) -> Response:
    """Answers at once when a command above `after` is pending, else the moment one is queued, else after
    `wait` seconds with none. Same answer as the heartbeat's; revoked, suspended and expired sites too."""
    return await push_api.wait(request, after, wait)


@router.post("/upgrade-report", summary="The host's outcome of an `upgrade` command (rollouts by rings)",
             description="Sent by the host service (`kitctl service run`) after it ran the health-gated upgrade an "
                         "`upgrade` command asked for: `upgraded` (running `version` now) or `rolled_back` (the "
                         "upgrade failed and the site runs its previous version); `waiting` when the command came "
                         "outside the site's maintenance window, `opted_out` when the licensee turned automatic "
                         "upgrades off. A failure halts the rollout before the next ring; an opted-out site is "
                         "skipped. `window` and `auto_upgrade` are the host's settings (a report may carry only "
                         "them). A repeated report changes nothing.",
             responses=responses(401, 403, 404, 422, 429, notes={
                 404: "no upgrade command of this site has that id",
                 422: "`incomplete_report`: `command_id`, `version` and `outcome` come together, and a report without "
                      "them carries `auto_upgrade`"}))
def post_upgrade_report(body: UpgradeReport, caller: SiteCaller = Depends(site_active),
                        hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    given = [body.command_id is not None, body.version is not None, body.outcome is not None]
    if any(given) and not all(given):
        raise ApiError(422, "incomplete_report", "command_id, version and outcome come together")
    if not any(given) and body.auto_upgrade is None:
        raise ApiError(422, "incomplete_report", "a report names a command (command_id, version, outcome) "
                                                 "or the host's auto_upgrade")
    if body.auto_upgrade is not None:
        rollouts.host_settings(hq, caller.site_id, body.window, body.auto_upgrade)
    if body.command_id is None or body.version is None or body.outcome is None:
        return {"site": caller.site_id, "window": body.window, "auto_upgrade": body.auto_upgrade}
    return rollouts.report(hq, caller.site_id, body.command_id, body.version, body.outcome, body.detail,
                           previous=body.previous)


BUNDLE_BODY = {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary", "minLength": 1, "maxLength": support.MAX_BUNDLE_BYTES}}}}


@router.post("/support-bundles/{request_id}", summary="Upload the support bundle HQ asked for (redacted, gzip)",
             openapi_extra={"requestBody": BUNDLE_BODY}, responses=responses(401, 403, 404, 409, 413, 422, 429, notes={
                 404: "HQ asked this site for no bundle with this id", 409: "`already_received`"}))
async def post_support_bundle(request: Request, request_id: str = Path(..., pattern=UUID_PATTERN),
                              caller: SiteCaller = Depends(site_active), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    body = bytearray()
    async for chunk in request.stream():  # bounded while reading, not after
        body += chunk
        if len(body) > support.MAX_BUNDLE_BYTES:
            raise ApiError(413, "too_large", f"a support bundle is at most {support.MAX_BUNDLE_BYTES} bytes")
    if not body:
        raise ApiError(422, "invalid_request", "body: the bundle is empty")
    return await run_in_threadpool(support.receive, hq, caller.site_id, request_id, bytes(body))
