"""Grades and ranking over the admin API (the ranking as JSON or CSV, the configuration, a suggestion's action),
and a site's own grade for its agent (licence token; a site sees only its own)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import Response

from hq import grades
from hq.auth import SiteCaller, get_hq, operator, site_active
from hq.errors import responses
from hq.grading import GradingConfig
from hq.schemas import SITE_ID
from hq.service import HQ

router = APIRouter(prefix="/v1/admin/grades", tags=["admin"])
site_router = APIRouter(prefix="/v1/grade", tags=["grades"])
Period = Query(None, pattern=grades.PERIOD_PATTERN, description="a month, YYYY-MM (default: this one)")


@router.get("", summary="Sites ranked by grade for a month, with trend and suggestion", responses=responses(401, 422))
def get_ranking(period: str | None = Period, op: str = Depends(operator),
                hq: HQ = Depends(get_hq)) -> list[dict[str, Any]]:
    return grades.ranking(hq, period)


@router.get("/csv", summary="The ranking as CSV", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **responses(401, 422)})
def get_csv(period: str | None = Period, op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> Response:
    return Response(grades.to_csv(grades.ranking(hq, period)), media_type="text/csv; charset=utf-8")


@router.get("/config", response_model=GradingConfig, summary="The grading thresholds and weights",
            responses=responses(401))
def get_config(op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> GradingConfig:
    return grades.config(hq)


@router.put("/config", response_model=GradingConfig, summary="Replace the grading thresholds and weights",
            responses=responses(401, 413, 422, notes={422: "`grading_rule`: a scale whose worst and best are the "
                                                             "wrong way round (the grade would not be monotonic), "
                                                             "grades not A > B > C > D = 0, or no weight above 0"}))
def put_config(body: GradingConfig = Body(...), op: str = Depends(operator), hq: HQ = Depends(get_hq)) -> GradingConfig:
    return grades.set_config(hq, op, body.model_dump())


@router.post("/{site}/act", summary="Carry out the site's suggestion (upgrade, warn or timed suspension)",
             responses=responses(401, 404, 409, 422, notes={409: "`nothing_to_do`: no suggestion for the site now"}))
def post_act(site: str = Path(..., pattern=SITE_ID), period: str | None = Period, op: str = Depends(operator),
             hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return grades.act(hq, op, site, period)


@site_router.get("", summary="The calling site's own grade this month: score, trend, each metric against its scale, "
                             "and what would raise it", responses=responses(401, 403, 422, 429))
def get_own_grade(period: str | None = Period, caller: SiteCaller = Depends(site_active),
                  hq: HQ = Depends(get_hq)) -> dict[str, Any]:
    return grades.own_grade(hq, caller.site_id, period)
