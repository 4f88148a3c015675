"""What every fleet page form shares: the operator's session, its CSRF check, the redirect back with a message."""

from __future__ import annotations

import hmac
from typing import Callable
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from hq import session as sessions
from hq.auth import get_hq
from hq.errors import ApiError
from hq.session import COOKIE, OperatorSession
from kitcore.errors import InvalidInput


def session_of(request: Request) -> OperatorSession | None:
    return sessions.read(get_hq(request), request.cookies.get(COOKIE))


def back(msg: str = "", error: str = "", anchor: str = "", query: str = "?") -> RedirectResponse:
    """Back to the list (with the filters it was on, `query`), carrying what happened."""
    flash = "&".join(f"{k}={quote(v)}" for k, v in (("msg", msg), ("error", error)) if v)
    target = query + ("&" if query != "?" and flash else "") + flash
    return RedirectResponse("/fleet" + (target if target != "?" else "") + (f"#{anchor}" if anchor else ""),
                            status_code=303)


def check_csrf(request: Request, token: str) -> OperatorSession:
    sess = session_of(request)
    if sess is None:
        raise ApiError(401, "unauthorized", "log in first")
    if not hmac.compare_digest(sess.csrf, token):
        raise ApiError(403, "csrf", "form expired or forged (CSRF token mismatch); reload the page")
    return sess


def acted(request: Request, csrf: str, action: Callable[[str], str], anchor: str) -> RedirectResponse:
    """Run a form's action as the session's operator; back to the list with its message, or its refusal as one line."""
    operator = check_csrf(request, csrf).operator
    try:
        return back(msg=action(operator), anchor=anchor)
    except (ApiError, InvalidInput) as exc:
        detail = exc.detail if isinstance(exc, ApiError) else str(exc)
        return back(error=detail.splitlines()[0][:200], anchor=anchor)
