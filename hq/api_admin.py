"""Operator endpoints under /v1/admin (bearer operator token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from hq import audit, catalog, inventory, licences, reviews, sites
from hq.auth import get_hq, operator
from hq.catalog import ItemSpec
from hq.fields import SKU_PATTERN
from hq.errors import ApiError, responses
from hq.risk import Rules
from hq.schemas import SITE_ID, FeatureOut, FeatureRegistration, LicenceIssue, LicenceOut, LicenceRenew, LicenceUpgrade, Reason, ReviewResolve, Suspension
from hq.service import HQ

router = APIRouter(prefix="/v1/admin", tags=["admin"])
SitePath = Path(..., pattern=SITE_ID)
SkuPath = Path(..., pattern=SKU_PATTERN)
MAX_CSV_BYTES = 20 * 1024 * 1024


@router.post("/licences", response_model=LicenceOut, summary="Issue a licence (the token is in the answer, once)",
             responses=responses(401, 409, 413, 422))
def issue_licence(body: LicenceIssue, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return licences.issue(hq, op, body.site, body.tier, list(body.categories), body.days, body.features,
                          body.regions, body.revenue_share_bps)


@router.get("/features", response_model=list[FeatureOut], summary="The licence features HQ may grant",
            responses=responses(401))
def list_features(op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    from hq import features

    return features.listed(hq)


@router.post("/features", response_model=FeatureOut, status_code=201,
             summary="Register a third party's licence feature, so licences may grant it",
             responses=responses(401, 409, 413, 422))
def register_feature(body: FeatureRegistration, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    from hq import features

    return features.register(hq, op, body.name, body.description, body.vendor)


@router.get("/licences", response_model=list[LicenceOut], summary="Every site's current licence",
            responses=responses(401))
def list_licences(op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return licences.list_licences(hq)


@router.post("/licences/{site}/revoke", response_model=LicenceOut,
             responses=responses(401, 404, 409, 413, 422))
def revoke(body: Reason, site: str = SitePath, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return licences.revoke(hq, op, site, body.reason)


@router.post("/licences/{site}/suspend", response_model=LicenceOut,
             responses=responses(401, 404, 409, 413, 422))
def suspend(body: Suspension, site: str = SitePath, op: str = Depends(operator),
            hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    """Until resumed, or for `days` days (HQ lifts it then; the site is told the end date)."""
    from hq import sanctions

    return sanctions.suspend_for(hq, op, site, body.reason, body.days)


@router.post("/licences/{site}/resume", response_model=LicenceOut,
             responses=responses(401, 404, 409, 422))
def resume(site: str = SitePath, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return licences.resume(hq, op, site)


@router.post("/licences/{site}/upgrade", response_model=LicenceOut,
             responses=responses(401, 404, 409, 413, 422))
def upgrade(body: LicenceUpgrade, site: str = SitePath, op: str = Depends(operator),
            hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return licences.upgrade(hq, op, site, body.tier, list(body.categories) if body.categories else None,
                            body.features, body.regions)


@router.post("/licences/{site}/renew", response_model=LicenceOut,
             responses=responses(401, 404, 409, 413, 422))
def renew(body: LicenceRenew, site: str = SitePath, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return licences.renew(hq, op, site, body.days)


@router.get("/audit", summary="The audit log, newest first",
            responses=responses(401, 422))
def get_audit(limit: int = Query(default=100, ge=1, le=1000), site: str | None = Query(default=None, pattern=SITE_ID),
              op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    with hq.session() as s:
        return audit.recent(s, limit, site)


@router.get("/catalog/items", summary="All catalog items (admin view, with stock)",
            responses=responses(401, 422))
def list_items(include_deleted: bool = False, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return catalog.list_items(hq, include_deleted)


@router.put("/catalog/items/{sku}", summary="Create or update a SKU",
            responses=responses(401, 413, 422, notes={422: "`qty_range`: min_qty is larger than max_qty; "
                                                        "`invalid_account_pattern`: not a Python regular expression"}))
def put_item(spec: ItemSpec, sku: str = SkuPath, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return catalog.upsert(hq, op, sku, spec)


@router.delete("/catalog/items/{sku}", summary="Delete a SKU (sites receive a tombstone)",
               responses=responses(401, 404, 422))
def delete_item(sku: str = SkuPath, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return catalog.remove(hq, op, sku)


@router.post("/catalog/card-keys", summary="Import card keys from CSV (sku,serial,secret)",
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                 "type": "string", "pattern": inventory.CSV_PATTERN}}}}},
             responses=responses(401, 404, 409, 413, 422))
async def import_card_keys(request: Request, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise ApiError(413, "too_large", "CSV is larger than 20 MB; split it")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_request", "CSV must be UTF-8") from None
    return await run_in_threadpool(inventory.import_csv, hq, op, text)


@router.get("/reviews", summary="Orders waiting for an operator",
            responses=responses(401, 422))
def list_reviews(site: str | None = Query(default=None, pattern=SITE_ID), op: str = Depends(operator),
                 hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return reviews.queue(hq, site)


@router.post("/reviews/{hq_order_id}/resolve", summary="Approve (deliver) or reject an order under review",
             responses=responses(401, 404, 409, 413, 422))
def resolve_review(body: ReviewResolve, hq_order_id: str = Path(..., max_length=40, pattern=r"^hq_[0-9a-f]+$"),
                   op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return reviews.resolve(hq, op, hq_order_id, body.decision, body.note)


@router.get("/sites", summary="The fleet: every site's licence state and last heartbeat",
            responses=responses(401))
def list_sites(op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return sites.fleet(hq)


@router.post("/sites/{site}/sync", summary="Ask the site to sync its catalog now",
             responses=responses(401, 404, 422))
def sync_site(site: str = SitePath, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return sites.sync_now(hq, op, site)


@router.get("/risk-rules", response_model=Rules, summary="The risk rules in force",
            responses=responses(401))
def get_rules(op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> Rules:
    return hq.rules.get()


@router.put("/risk-rules", response_model=Rules, summary="Replace the risk rules",
            responses=responses(401, 413, 422))
def put_rules(rules: Rules = Body(...), op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> Rules:
    hq.rules.save(rules)
    with hq.session() as s:
        audit.record(s, op, "risk.rules", None, rules=rules.model_dump(mode="json"))
    return rules
