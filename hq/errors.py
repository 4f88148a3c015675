"""API errors: `{"error": code, "detail": one line}` with a proper status."""

from __future__ import annotations


class ApiError(Exception):
    """Raised by services and endpoints; turned into a JSON error response."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} does not exist")


def conflict(code: str, detail: str) -> ApiError:
    return ApiError(409, code, detail)
