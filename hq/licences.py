"""The licence authority: issue, revoke, suspend, resume, upgrade, renew.

Every change is recorded in the audit log and, where the site must learn of
it, queued as a signed command for its next heartbeat. Tokens are signed by
`kitcore.licence.token.issue_licence` with HQ's current key; HQ keeps only
their hash.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq import audit, commands
from hq.clock import aware, iso, utcnow
from hq.errors import ApiError
from hq.models import Licence, Site
from hq.registry import new_password, username_for
from kitcore.errors import InvalidInput
from kitcore.licence.tiers import TIERS
from kitcore.licence.token import MAX_DAYS, issue_licence

if TYPE_CHECKING:
    from hq.service import HQ


def _get_site(session: Session, site_id: str, lock: bool = False) -> Site:
    site = commands.lock_site(session, site_id) if lock else session.scalar(select(Site).where(Site.id == site_id))
    if site is None:
        raise ApiError(404, "not_found", f"site {site_id!r} has no licence")
    return site


def _current(session: Session, site: Site) -> Licence:
    lic = session.get(Licence, site.current_jti) if site.current_jti else None
    if lic is None:
        raise ApiError(404, "not_found", f"site {site.id!r} has no current licence")
    return lic


def _registry_grant(hq: "HQ", site: Site) -> tuple[dict[str, Any] | None, str | None]:
    """The `registry` claim (url, the site's username and password) and a new password to publish."""
    if not hq.settings.registry_url:
        return None, None
    fresh = None
    if site.registry_password_enc is None:
        fresh = new_password()
        site.registry_username = username_for(site.id)
        site.registry_password_enc = hq.vault.encrypt(fresh, context=f"registry:{site.id}")
    password = hq.vault.decrypt(site.registry_password_enc, context=f"registry:{site.id}")
    return {"url": hq.settings.registry_url, "username": site.registry_username, "password": password}, fresh


def _sign(hq: "HQ", session: Session, site: Site, operator: str, tier: str, categories: list[str], days: int,
          features: list[str] | None, regions: list[str] | None, revenue_share_bps: int | None,
          starts: datetime | None = None) -> tuple[str, Licence]:
    """Sign a token for `site` and record it as the site's current licence."""
    from kitcore.licence.token import verify_licence

    _check_grant(session, features, regions)
    grant, fresh_password = _registry_grant(hq, site)
    token = issue_licence(
        hq.keys, site=site.id, tier=tier, categories=categories, days=days, hq_url=hq.settings.public_url,
        registry=grant, features=features, regions=regions,
        revenue_share_bps=revenue_share_bps, now=int(starts.timestamp()) if starts else None,
    )
    if grant and fresh_password:  # only once the token is valid: no entry for a refused request
        hq.htpasswd.set(grant["username"], fresh_password)
    claims = verify_licence(token, hq.pinned()).claims
    lic = Licence(
        jti=claims.jti, site_id=site.id, tier=claims.tier, features=list(claims.features),
        categories=list(claims.categories), regions=list(claims.regions),
        revenue_share_bps=claims.revenue_share_bps,
        issued_at=datetime.fromtimestamp(claims.iat, timezone.utc),
        expires_at=datetime.fromtimestamp(claims.exp, timezone.utc),
        issued_by=operator, token_sha256=hashlib.sha256(token.encode()).hexdigest(),
    )
    session.add(lic)
    site.current_jti = lic.jti
    return token, lic


def _check_grant(session: Session, features: list[str] | None, regions: list[str] | None) -> None:
    """The API's schema checks their form; whether HQ knows each feature needs the registry."""
    import re

    from hq.features import check
    from hq.fields import REGION_PATTERN

    try:
        check(session, features or [])
    except InvalidInput as exc:
        raise InvalidInput(f"features: {exc}") from None
    bad = [r for r in regions or [] if not re.match(REGION_PATTERN, r)]
    if bad:
        raise InvalidInput(f"regions: {bad[0]!r} is not a region like CN or CN-GD")


def _check_owner(licensee: str | None, domain: str | None) -> None:
    """The API's schema checks these too; the CLI comes here directly."""
    import re

    from hq.fields import DOMAIN_PATTERN, TEXT_PATTERN

    if licensee is not None and not (0 < len(licensee) <= 100 and re.fullmatch(TEXT_PATTERN, licensee)):
        raise ApiError(422, "invalid_licence_request", "licensee: one line of 1-100 characters")
    if domain is not None and not (len(domain) <= 253 and re.fullmatch(DOMAIN_PATTERN, domain.lower())):
        raise ApiError(422, "invalid_licence_request", f"domain: {domain[:80]!r} is not a host name like shop.example.cn")


def issue(hq: "HQ", operator: str, site_id: str, tier: str, categories: list[str], days: int,
          features: list[str] | None = None, regions: list[str] | None = None,
          revenue_share_bps: int | None = None, licensee: str | None = None,
          domain: str | None = None) -> dict[str, Any]:
    """Issue a licence for a new site, or a fresh one for a revoked site being re-admitted.

    `licensee` and `domain` are what the fleet page searches; given again on re-admission they replace
    the old ones, left out they stay."""
    _check_owner(licensee, domain)
    with hq.session() as session:
        site = session.get(Site, site_id)
        if site is not None and site.status != "revoked":
            raise ApiError(409, "licence_exists", f"site {site_id!r} already holds a licence; use upgrade or renew")
        if site is None:
            site = Site(id=site_id, created_at=utcnow(), status="active", command_seq=0, applied_seq=0)
            session.add(site)
            session.flush()  # the licence row refers to it
        else:
            site.status, site.status_reason, site.suspended_until = "active", None, None
            site.registry_password_enc = None  # a re-admitted site gets new registry credentials
        site.licensee = licensee or site.licensee
        site.domain = domain.lower() if domain else site.domain
        try:
            token, lic = _sign(hq, session, site, operator, tier, categories, days, features, regions, revenue_share_bps)
        except InvalidInput as exc:
            raise ApiError(422, "invalid_licence_request", str(exc)) from None
        audit.record(session, operator, "licence.issue", site_id, jti=lic.jti, tier=tier, categories=categories, days=days)
        return {**describe(site, lic), "token": token}


def revoke(hq: "HQ", operator: str, site_id: str, reason: str) -> dict[str, Any]:
    """Revoke the site's licences for good: 403 on every call, registry access removed."""
    with hq.session() as session:
        site = _get_site(session, site_id, lock=True)
        if site.status == "revoked":
            raise ApiError(409, "already_revoked", f"site {site_id!r} is already revoked")
        site.status, site.status_reason, site.suspended_until = "revoked", reason, None
        now = utcnow()
        for lic in session.scalars(select(Licence).where(Licence.site_id == site_id, Licence.revoked_at.is_(None))):
            lic.revoked_at = now
        if site.registry_username:
            hq.htpasswd.remove(site.registry_username)
        site.registry_password_enc = None
        commands.enqueue(session, site, "revoke", {"reason": reason})
        audit.record(session, operator, "licence.revoke", site_id, reason=reason)
        return describe(site, _current(session, site))


def suspend(hq: "HQ", operator: str, site_id: str, reason: str, until: datetime | None = None) -> dict[str, Any]:
    """Stop the site's orders (403 licence_suspended) until resumed, or until `until` (hq.sanctions
    lifts it then); everything else keeps working. The site is told the end date with the reason."""
    with hq.session() as session:
        site = _get_site(session, site_id, lock=True)
        if site.status != "active":
            raise ApiError(409, "not_active", f"site {site_id!r} is {site.status}, not active")
        site.status, site.status_reason, site.suspended_until = "suspended", reason, until
        payload: dict[str, Any] = {"reason": reason}
        if until is not None:
            payload["until"] = int(until.timestamp())
        commands.enqueue(session, site, "suspend", payload)
        audit.record(session, operator, "licence.suspend", site_id, reason=reason, until=iso(until))
        return describe(site, _current(session, site))


def resume(hq: "HQ", operator: str, site_id: str, why: str | None = None) -> dict[str, Any]:
    with hq.session() as session:
        site = _get_site(session, site_id, lock=True)
        if site.status != "suspended":
            raise ApiError(409, "not_suspended", f"site {site_id!r} is {site.status}, not suspended")
        return resume_locked(session, site, operator, why)


def resume_locked(session: Session, site: Site, operator: str, why: str | None = None) -> dict[str, Any]:
    """Resume a suspended site whose row the caller holds locked."""
    site.status, site.status_reason, site.suspended_until = "active", None, None
    commands.enqueue(session, site, "resume", {})
    audit.record(session, operator, "licence.resume", site.id, **({"why": why} if why else {}))
    return describe(site, _current(session, site))


def upgrade(hq: "HQ", operator: str, site_id: str, tier: str | None = None, categories: list[str] | None = None,
            features: list[str] | None = None, regions: list[str] | None = None) -> dict[str, Any]:
    """A new token with a new tier, categories or features, same expiry; sent as a `licence` command."""
    with hq.session() as session:
        site = _get_site(session, site_id, lock=True)
        if site.status == "revoked":
            raise ApiError(409, "already_revoked", f"site {site_id!r} is revoked; issue a new licence instead")
        old = _current(session, site)
        new_tier = tier or old.tier
        left = aware(old.expires_at) - utcnow()
        days = max(1, round(left.total_seconds() / 86400))
        feats = features if features is not None else (None if tier else list(old.features))
        cats = categories or list(old.categories)
        if len(cats) > TIERS[new_tier].max_categories:  # a rule on the licence as it stands, not on the body
            raise ApiError(409, "too_many_categories", f"categories: tier {new_tier} allows at most "
                           f"{TIERS[new_tier].max_categories}; the licence has {len(cats)}: send categories too")
        try:
            token, lic = _sign(hq, session, site, operator, new_tier, cats, days,
                               feats, regions or list(old.regions), None if tier else old.revenue_share_bps)
        except InvalidInput as exc:
            raise ApiError(422, "invalid_licence_request", str(exc)) from None
        commands.enqueue(session, site, "licence", {"token": token})
        audit.record(session, operator, "licence.upgrade", site_id, jti=lic.jti, old_jti=old.jti, tier=new_tier,
                     categories=lic.categories, features=lic.features)
        return {**describe(site, lic), "token": token}


def renew(hq: "HQ", operator: str, site_id: str, days: int) -> dict[str, Any]:
    """Extend the term by `days` from the current expiry (or from now if already expired)."""
    with hq.session() as session:
        site = _get_site(session, site_id, lock=True)
        if site.status == "revoked":
            raise ApiError(409, "already_revoked", f"site {site_id!r} is revoked; issue a new licence instead")
        old = _current(session, site)
        now = utcnow()
        end = max(aware(old.expires_at), now)
        total_days = (end - now).days + days
        if total_days > MAX_DAYS:  # depends on the term left, which the schema cannot know
            raise ApiError(409, "term_too_long", f"days: the licence would run {total_days} days from now; "
                           f"at most {MAX_DAYS}")
        try:
            token, lic = _sign(hq, session, site, operator, old.tier, list(old.categories), total_days,
                               list(old.features), list(old.regions), old.revenue_share_bps)
        except InvalidInput as exc:
            raise ApiError(422, "invalid_licence_request", str(exc)) from None
        commands.enqueue(session, site, "licence", {"token": token})
        audit.record(session, operator, "licence.renew", site_id, jti=lic.jti, old_jti=old.jti, days=days)
        return {**describe(site, lic), "token": token}


def list_licences(hq: "HQ") -> list[dict[str, Any]]:
    """Every site with its current licence."""
    with hq.session() as session:
        rows = session.execute(select(Site, Licence).join(Licence, Licence.jti == Site.current_jti).order_by(Site.id))
        return [describe(site, lic) for site, lic in rows]


def licence_state(site: Site, lic: Licence, now: datetime | None = None) -> str:
    """What the heartbeat reports: revoked/suspended win, then expiry."""
    return licence_state_of(site.status, lic.expires_at, now)


def licence_state_of(site_status: str, expires_at: datetime, now: datetime | None = None) -> str:
    if site_status in ("revoked", "suspended"):
        return site_status
    if aware(expires_at) <= (now or utcnow()):
        return "expired"
    return "active"


def describe(site: Site, lic: Licence) -> dict[str, Any]:
    return {
        "site": site.id, "jti": lic.jti, "status": licence_state(site, lic), "reason": site.status_reason,
        "suspended_until": iso(site.suspended_until) if site.status == "suspended" else None,
        "tier": lic.tier, "categories": list(lic.categories), "features": list(lic.features),
        "regions": list(lic.regions), "revenue_share_bps": lic.revenue_share_bps,
        "issued_at": iso(lic.issued_at), "expires_at": iso(lic.expires_at), "issued_by": lic.issued_by,
    }
