"""The fleet's grades page: sites ranked for a month with their trend, CSV export, a suggestion's one action.

Computed on request (hq.grades), not on the fleet page itself: a ranking reads four months of orders.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from hq import grades, i18n
from hq.auth import get_hq
from hq.errors import ApiError
from hq.fleet_forms import check_csrf, session_of
from hq.service import HQ
from hq.site_metrics import previous_month

router = APIRouter(include_in_schema=False)
Period = Query(None, pattern=grades.PERIOD_PATTERN)


@router.get("/fleet/grades")
def grades_page(request: Request, period: str | None = Period, msg: str = Query("", max_length=300),
                error: str = Query("", max_length=300), hq: HQ = Depends(get_hq)) -> Response:
    from hq.fleet import _render

    sess = session_of(request)
    if sess is None:
        return RedirectResponse("/fleet/login", status_code=303)
    i18n.check_lang(request)
    month = period or grades.current_period()
    context: dict[str, Any] = {"operator": sess.operator, "csrf": sess.csrf, "period": month,
                               "previous": previous_month(month), "rows": grades.ranking(hq, month),
                               "msg": msg, "error": error}
    return _render(request, "grades.html", context)


@router.get("/fleet/grades.csv")
def grades_csv(request: Request, period: str | None = Period, hq: HQ = Depends(get_hq)) -> Response:
    if session_of(request) is None:
        return RedirectResponse("/fleet/login", status_code=303)
    month = period or grades.current_period()
    return Response(grades.to_csv(grades.ranking(hq, month)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="grades-{month}.csv"'})


@router.post("/fleet/grades/{site}/act")
def grades_act(request: Request, site: str, csrf: str = Form(..., max_length=100),
               period: str = Form(..., max_length=7), hq: HQ = Depends(get_hq)) -> Response:
    """Carry out the site's suggestion (recomputed now); back to the page with what happened."""
    from urllib.parse import quote

    operator = check_csrf(request, csrf).operator
    target = f"/fleet/grades?period={quote(period[:7])}"
    try:
        done = grades.act(hq, operator, site, period)
    except ApiError as exc:
        return RedirectResponse(f"{target}&error={quote(exc.detail[:200])}", status_code=303)
    message = f"{site}: {done['done']['action']} done (grade {done['grade']})"
    return RedirectResponse(f"{target}&msg={quote(message)}", status_code=303)
