"""API errors: `{"error": code, "detail": one line}` with a proper status."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from kitcore.errorbody import CODE, error_body

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

log = logging.getLogger("hq")


class ErrorBody(BaseModel):
    """The error body of every HQ endpoint (and of the storefront's JSON APIs and the agent's endpoints)."""

    error: str = Field(pattern=CODE.pattern, description="a stable machine-readable code")
    detail: str = Field(description="one line for people: what is wrong, naming the field")


WHY = {
    401: "No or bad bearer token (`unauthorized`, `invalid_licence`, `unknown_licence`)",
    403: "Licence revoked or suspended (`licence_revoked`, `licence_suspended`)",
    404: "The named resource does not exist (`not_found`)",
    409: "Conflicts with HQ's current state (the code names the conflict)",
    410: "The cursor cannot be continued from (`cursor_expired`): resync from no cursor",
    413: "Body too large (`too_large`)",
    422: "The request fails validation (`invalid_request`, naming the field), or a rule the schema cannot say",
    429: "Rate limited (`rate_limited`, `Retry-After`)",
    503: "A payment gateway could not be reached (`payment_gateway_unavailable`, `Retry-After`): nothing was "
         "stored; send the same request again",
}


def responses(*statuses: int, notes: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for the errors an operation can give, each with the error body.

    `notes` adds what the schema cannot say: refusals of a schema-valid request (a cross-field rule,
    HQ's state), each with its own code.
    """
    notes = notes or {}
    return {status: {"model": ErrorBody, "description": WHY[status] + (f"; {notes[status]}" if status in notes else "")}
            for status in statuses}


class ApiError(Exception):
    """Raised by services and endpoints; turned into a JSON error response."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


# Cross-field rules JSON Schema cannot state: pydantic errors of these types keep their type as the error code.
RULE_CODES = frozenset({"qty_range", "invalid_account_pattern", "grading_rule"})


def error_code(errors: Any) -> str:
    """`invalid_request`, or the rule's own code when the first problem is a cross-field rule."""
    kind = errors[0].get("type") if errors else None
    return kind if kind in RULE_CODES else "invalid_request"


def first_error(errors: Any) -> str:
    """One line from pydantic's validation errors: where, and what is wrong."""
    if not errors:
        return "invalid request"
    err = errors[0]
    loc = list(err.get("loc", ()))
    if len(loc) > 1 and loc[0] in ("body", "query", "path", "header"):  # name the field, not where it travelled
        loc = loc[1:]
    where = ".".join(str(p) for p in loc if p != "body") or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> "JSONResponse":
    """The JSON error every endpoint answers with: `{"error": code, "detail": one line}`."""
    from starlette.responses import JSONResponse

    return JSONResponse(error_body(code, detail), status_code=status, headers=headers)


class Unavailable(Exception):
    """A service HQ relies on for the request could not be used now: 503 with `code`, the caller tries again."""

    what = "a service"
    code = "unavailable"
    retry_after_seconds = 5


def known_error_response(exc: Exception) -> "JSONResponse | None":
    """The answer to an error a request handler may raise on purpose (None for any other): the app's exception
    handlers and the fast paths (hq.fast_paths) answer each the same way."""
    from kitcore.errors import InvalidInput

    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.detail, exc.headers)
    if isinstance(exc, Unavailable):
        log.warning("%s unavailable: %s", exc.what, exc)
        return error_response(503, exc.code, str(exc), {"Retry-After": str(exc.retry_after_seconds)})
    if isinstance(exc, InvalidInput):  # 422 unless the refusal names its own status and code (404: an unknown SKU)
        return error_response(getattr(exc, "status", 422), getattr(exc, "code", "invalid_request"), str(exc))
    return None
