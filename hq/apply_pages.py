"""The public apply pages (English and zh-CN): the application form, the number and secret once, the
progress page, and resubmitting a rejected application. The same functions as the API (hq.applications).

A refused form is shown again with its one-line reason, and nothing is stored.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from hq import application_files as files
from hq import applications, i18n
from hq.api_applications import ApplicationBody
from hq.auth import get_hq
from hq.errors import ApiError, first_error
from hq.service import HQ
from kitcore.licence.tiers import TIERS

router = APIRouter(include_in_schema=False)


def _render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    from hq.fleet import _render as render

    return render(request, template, context, status)


def _form_context(hq: HQ) -> dict[str, Any]:
    with hq.session() as session:
        categories = sorted(applications.sold_categories(session))
    return {"categories": categories, "tiers": list(TIERS), "values": {}}


@router.get("/apply")
def apply_page(request: Request, hq: HQ = Depends(get_hq)) -> Response:
    i18n.check_lang(request)
    return _render(request, "apply.html", _form_context(hq))


@router.post("/apply")
async def apply_submit(request: Request, hq: HQ = Depends(get_hq)) -> Response:
    from starlette.concurrency import run_in_threadpool

    form = await request.form(max_files=files.MAX_FILES + 1, max_fields=100)
    values = {k: form.get(k) for k in ("applicant", "name", "email", "regions", "tier", "domain")}
    try:
        data = await _application(form, i18n.locale_of(request, hq.settings.locale))
        done = await run_in_threadpool(applications.submit, hq, data)
    except (ApiError, ValueError) as exc:
        context = {**_form_context(hq), "values": values, "chosen": form.getlist("categories"), "error": _line(exc)}
        return _render(request, "apply.html", context, status=getattr(exc, "status", 422))
    return _render(request, "apply_done.html", {"done": done}, status=201)


async def _application(form: FormData, locale: str) -> applications.ApplicationIn:
    regions = [r.strip().upper() for r in str(form.get("regions") or "").split(",") if r.strip()]
    body = {"applicant": form.get("applicant"), "name": form.get("name"), "email": str(form.get("email") or "").strip(),
            "categories": form.getlist("categories"), "regions": regions, "tier": form.get("tier"),
            "domain": str(form.get("domain") or "").strip().lower() or None, "locale": locale}
    try:
        parsed = ApplicationBody.model_validate(body)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", first_error(exc.errors())) from None
    data = parsed.to_input()
    return applications.ApplicationIn(**{**data.__dict__, "uploads": await _uploads(form)})


async def _uploads(form: FormData) -> list[files.Upload]:
    """Each non-empty `material.<kind>` file with its `expires.<kind>` date; read at most one byte past the limit."""
    out = []
    for key, value in form.multi_items():
        if not key.startswith("material.") or not isinstance(value, UploadFile) or not value.filename:
            continue
        kind = key.removeprefix("material.")
        data = await value.read(files.MAX_FILE_BYTES + 1)
        if not data:
            continue
        out.append(files.Upload(kind[:40], value.filename, data, _date(form.get(f"expires.{kind}"), kind)))
    return out


def _date(value: Any, kind: str) -> date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(422, "invalid_request", f"expires.{kind[:40]}: {value[:20]!r} is not a date like 2027-06-30") from None


def _line(exc: Exception) -> str:
    return (exc.detail if isinstance(exc, ApiError) else str(exc)).splitlines()[0][:300]


@router.get("/apply/status")
def status_lookup(request: Request) -> Response:
    i18n.check_lang(request)
    number = request.query_params.get("n", "")[:12]
    return _render(request, "apply_status.html", {"number": number, "progress": None})


@router.post("/apply/status")
async def status_page(request: Request, hq: HQ = Depends(get_hq)) -> Response:
    from starlette.concurrency import run_in_threadpool

    number, secret = await _number_and_secret(request)
    try:
        progress = await run_in_threadpool(applications.progress, hq, number, secret)
    except ApiError as exc:
        return _refused(request, number, exc)
    return _render(request, "apply_status.html", {"number": number, "secret": secret, "progress": progress})


async def _number_and_secret(request: Request) -> tuple[str, str]:
    """The application number and secret a progress form POSTs (never in a URL)."""
    form = await request.form(max_files=0, max_fields=10)
    return str(form.get("n") or "").strip()[:12], str(form.get("s") or "").strip()[:100]


def _refused(request: Request, number: str, exc: ApiError) -> Response:
    return _render(request, "apply_status.html", {"number": number, "progress": None, "error": _line(exc)},
                   status=exc.status)


@router.post("/apply/pay")
async def pay_page(request: Request, hq: HQ = Depends(get_hq)) -> Response:
    """The applicant pays the base fee: off to the gateway's cashier (hq.payments.application_fee), or the refusal."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import RedirectResponse

    from hq.payments import application_fee

    number, secret = await _number_and_secret(request)
    try:
        payment = await run_in_threadpool(application_fee.pay, hq, number, secret)
    except ApiError as exc:
        return _refused(request, number, exc)
    return RedirectResponse(payment["pay_url"], status_code=303)


@router.post("/apply/resubmit")
async def resubmit_page(request: Request, hq: HQ = Depends(get_hq)) -> Response:
    from starlette.concurrency import run_in_threadpool

    form = await request.form(max_files=files.MAX_FILES + 1, max_fields=100)
    number, secret = str(form.get("n") or "").strip()[:12], str(form.get("s") or "").strip()[:100]
    error = None
    try:
        await run_in_threadpool(applications.resubmit, hq, number, secret, await _uploads(form))
    except ApiError as exc:
        error = _line(exc)
        if exc.status == 404:
            return _render(request, "apply_status.html", {"number": number, "progress": None, "error": error}, 404)
    progress = await run_in_threadpool(applications.progress, hq, number, secret)
    return _render(request, "apply_status.html", {"number": number, "secret": secret, "progress": progress,
                                                  "error": error}, 422 if error else 200)
