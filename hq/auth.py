"""Who is calling: sites by licence token, operators by bearer token (FastAPI dependencies)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import select

from hq.errors import ApiError
from hq.models import Licence, Site
from hq.service import HQ
from kitctl.errors import LicenceError


@dataclass(frozen=True)
class SiteCaller:
    site_id: str
    jti: str
    categories: tuple[str, ...]
    regions: tuple[str, ...]
    site_status: str
    reason: str | None


def get_hq(request: Request) -> HQ:
    return request.app.state.hq  # type: ignore[no-any-return]


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def _verify(hq: HQ, token: str, allow_expired: bool) -> tuple[str, str]:
    """(site, jti) from a licence token whose signature verifies; expiry checked unless allowed."""
    from kitctl.licence import jws
    from kitctl.licence.token import LICENCE_TYP, verify_licence

    try:
        if allow_expired:  # the heartbeat must still reach an expired site, so a renewal can
            payload = jws.verify(token, hq.pinned(), LICENCE_TYP, what="licence")
            sub, jti = payload.get("sub"), payload.get("jti")
            if not isinstance(sub, str) or not isinstance(jti, str):
                raise LicenceError("licence rejected: sub or jti missing")
            return sub, jti
        claims = verify_licence(token, hq.pinned()).claims
        return claims.sub, claims.jti
    except LicenceError as exc:
        raise ApiError(401, "invalid_licence", str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


def site_caller(request: Request, *, allow_revoked: bool = False, allow_suspended: bool = True) -> SiteCaller:
    hq = get_hq(request)
    token = bearer(request)
    heartbeat = allow_revoked
    site_id, jti = _verify(hq, token, allow_expired=heartbeat)
    wait = request.app.state.limiter.allow(site_id)
    if wait:
        raise ApiError(429, "rate_limited", f"too many requests for site {site_id}; retry in {wait:.1f}s",
                       headers={"Retry-After": str(max(1, round(wait)))})
    with hq.session() as s:
        row = s.execute(select(Licence, Site).join(Site, Site.id == Licence.site_id).where(Licence.jti == jti)).first()
    if row is None or row[0].site_id != site_id:
        raise ApiError(401, "unknown_licence", "this licence is not known to HQ")
    lic, site = row
    revoked = site.status == "revoked" or lic.revoked_at is not None
    if revoked and not allow_revoked:
        raise ApiError(403, "licence_revoked", f"licence revoked: {site.status_reason or 'no reason given'}")
    if site.status == "suspended" and not allow_suspended:
        raise ApiError(403, "licence_suspended", f"licence suspended: {site.status_reason or 'no reason given'}")
    return SiteCaller(site_id, jti, tuple(lic.categories), tuple(lic.regions), site.status, site.status_reason)


def site_any(request: Request) -> SiteCaller:
    """Heartbeat: answers revoked and suspended sites too, so their command reaches them."""
    return site_caller(request, allow_revoked=True)


def site_active(request: Request) -> SiteCaller:
    """Catalog and order status: refused once revoked."""
    return site_caller(request)


def site_ordering(request: Request) -> SiteCaller:
    """New orders: refused when revoked or suspended."""
    return site_caller(request, allow_suspended=False)


def operator(request: Request) -> str:
    from hq.operators import authenticate

    name = authenticate(get_hq(request), bearer(request))
    if name is None:
        raise ApiError(401, "unauthorized", "operator token not recognised", headers={"WWW-Authenticate": "Bearer"})
    return name
