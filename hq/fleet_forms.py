"""What every fleet page form shares: the operator's session, its CSRF check, the redirect back with a message."""

from __future__ import annotations

import hmac
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from hq import session as sessions
from hq.auth import get_hq
from hq.errors import ApiError
from hq.session import COOKIE, OperatorSession


def session_of(request: Request) -> OperatorSession | None:
    return sessions.read(get_hq(request), request.cookies.get(COOKIE))


def back(msg: str = "", error: str = "", anchor: str = "") -> RedirectResponse:
    query = f"?msg={quote(msg)}" if msg else (f"?error={quote(error)}" if error else "")
    return RedirectResponse("/fleet" + query + (f"#{anchor}" if anchor else ""), status_code=303)


def check_csrf(request: Request, token: str) -> OperatorSession:
    sess = session_of(request)
    if sess is None:
        raise ApiError(401, "unauthorized", "log in first")
    if not hmac.compare_digest(sess.csrf, token):
        raise ApiError(403, "csrf", "form expired or forged (CSRF token mismatch); reload the page")
    return sess
