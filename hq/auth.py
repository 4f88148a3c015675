"""Who is calling: sites by licence token, operators by bearer token (FastAPI dependencies)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy import bindparam

from hq.errors import ApiError
from hq.models import Licence, Site
from hq.service import HQ
from hq.tokencache import Verified
from kitcore.errors import LicenceError

if TYPE_CHECKING:
    from kitcore.licence.keys import PinnedKeys


@dataclass(frozen=True)
class SiteCaller:
    site_id: str
    jti: str
    categories: tuple[str, ...]
    regions: tuple[str, ...]
    site_status: str
    reason: str | None


async def get_hq_dependency(request: Request) -> HQ:
    """`get_hq` for Depends(): async, so FastAPI does not hand it to a worker thread."""
    return request.app.state.hq  # type: ignore[no-any-return]


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
    keys = hq.pinned()
    hit = hq.token_cache.get(keys, token, allow_expired)
    if hit is not None:
        return hit.site_id, hit.jti
    site_id, jti, window = _verify_fully(keys, token, allow_expired)
    hq.token_cache.put(keys, token, allow_expired, Verified(site_id, jti, *window, cached_at=time.time()))
    return site_id, jti


def _verify_fully(keys: "PinnedKeys", token: str, allow_expired: bool) -> tuple[str, str, tuple[float, float | None]]:
    """Signature and claims; also the time window in which the same verification would pass."""
    from kitcore.licence import jws
    from kitcore.licence.token import CLOCK_SKEW_SECONDS, GRACE_SECONDS, LICENCE_TYP, verify_licence

    try:
        if allow_expired:  # the heartbeat must still reach an expired site, so a renewal can
            payload = jws.verify(token, keys, LICENCE_TYP, what="licence")
            sub, jti = payload.get("sub"), payload.get("jti")
            if not isinstance(sub, str) or not isinstance(jti, str):
                raise LicenceError("licence rejected: sub or jti missing")
            return sub, jti, (float("-inf"), None)
        claims = verify_licence(token, keys).claims
        not_before = max(claims.nbf, claims.iat) - CLOCK_SKEW_SECONDS
        not_after = claims.exp + GRACE_SECONDS + CLOCK_SKEW_SECONDS - 1
        return claims.sub, claims.jti, (not_before, not_after)
    except LicenceError as exc:
        raise ApiError(401, "invalid_licence", str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


_STATUS = None


def _status_query():  # type: ignore[no-untyped-def]
    """One indexed read: the licence (by jti) and its site's status, built once."""
    global _STATUS
    if _STATUS is None:
        from sqlalchemy import select

        _STATUS = (select(Licence.site_id, Licence.revoked_at, Licence.categories, Licence.regions,
                          Site.status, Site.status_reason)
                   .join(Site, Site.id == Licence.site_id).where(Licence.jti == bindparam("jti")))
    return _STATUS


def _rate_limit(request: Request, site_id: str) -> None:
    wait = request.app.state.limiter.allow(site_id)
    if wait:
        raise ApiError(429, "rate_limited", f"too many requests for site {site_id}; retry in {wait:.1f}s",
                       headers={"Retry-After": str(max(1, round(wait)))})


def site_caller(request: Request, *, allow_suspended: bool = True) -> SiteCaller:
    hq = get_hq(request)
    site_id, jti = _verify(hq, bearer(request), allow_expired=False)
    _rate_limit(request, site_id)
    with hq.read() as conn:
        row = conn.execute(_status_query(), {"jti": jti}).first()
    if row is None or row.site_id != site_id:
        raise ApiError(401, "unknown_licence", "this licence is not known to HQ")
    revoked = row.status == "revoked" or row.revoked_at is not None
    if revoked:
        raise ApiError(403, "licence_revoked", f"licence revoked: {row.status_reason or 'no reason given'}")
    if row.status == "suspended" and not allow_suspended:
        raise ApiError(403, "licence_suspended", f"licence suspended: {row.status_reason or 'no reason given'}")
    return SiteCaller(site_id, jti, tuple(row.categories), tuple(row.regions), row.status, row.status_reason)


@dataclass(frozen=True)
class TokenCaller:
    """A site whose token verified; its licence is checked against the database by the caller."""

    site_id: str
    jti: str


async def site_token(request: Request) -> TokenCaller:
    """Heartbeat: answers revoked, suspended and expired sites too, so their command reaches them.

    Async because it does no database I/O (the signature check is cached per
    worker), which spares a thread-pool hand-off per beat. Only the signature and
    rate limit are checked here; recording the beat (`hq.heartbeat_pg` on
    PostgreSQL, `hq.sites.heartbeat` on SQLite) checks in the same statement or
    transaction that the licence is known and is the site's (the same 401 as
    `site_caller`), saving a round trip per beat.
    """
    hq = get_hq(request)
    site_id, jti = _verify(hq, bearer(request), allow_expired=True)
    _rate_limit(request, site_id)
    return TokenCaller(site_id, jti)


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
