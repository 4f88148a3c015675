"""API errors: `{"error": code, "detail": one line}` with a proper status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import JSONResponse


class ApiError(Exception):
    """Raised by services and endpoints; turned into a JSON error response."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def first_error(errors: Any) -> str:
    """One line from pydantic's validation errors: where, and what is wrong."""
    if not errors:
        return "invalid request"
    err = errors[0]
    where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> "JSONResponse":
    """The JSON error every endpoint answers with: `{"error": code, "detail": one line}`."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": code, "detail": detail.splitlines()[0] if detail else code},
                        status_code=status, headers=headers)
