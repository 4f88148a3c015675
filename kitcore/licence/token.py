"""Licence tokens: what HQ grants a sub-site, signed so it verifies offline."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kitcore.errors import InvalidInput, LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import PinnedKeys
from kitcore.licence.tiers import CATEGORIES, TIERS, tier as get_tier

if TYPE_CHECKING:
    from kitcore.licence.keys import HQKeyStore

LICENCE_TYP = "kitctl-licence+jwt"
ISSUER = "kitctl-hq"
CLOCK_SKEW_SECONDS = 120
GRACE_SECONDS = 14 * 86400
MAX_DAYS = 3660
MAX_TIME = 253402300799  # 9999-12-31T23:59:59Z: the last instant every date library can show
SITE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")  # also a pydantic pattern (whose `$` is the very end): fullmatch here


class RegistryGrant(BaseModel):
    """Pull access to HQ's image registry that the licence carries."""

    model_config = ConfigDict(extra="forbid", strict=True)
    url: str = Field(min_length=1, max_length=255)
    username: str = Field(min_length=1, max_length=128)
    password: str | None = Field(default=None, max_length=256)


class LicenceClaims(BaseModel):
    """The claims of a licence token; types are strict, unknown claims ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    iss: str
    sub: str = Field(pattern=SITE_ID.pattern)
    jti: str = Field(min_length=1, max_length=64)
    iat: int = Field(ge=0, le=MAX_TIME)
    nbf: int = Field(ge=0, le=MAX_TIME)
    exp: int = Field(ge=0, le=MAX_TIME)
    tier: str
    features: list[str] = Field(max_length=64)
    categories: list[str] = Field(min_length=1, max_length=64)
    regions: list[str] = Field(max_length=64)
    revenue_share_bps: int = Field(ge=0, le=10000)
    hq_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=512)
    registry: RegistryGrant | None = None

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, value: str) -> str:
        if value not in TIERS:
            raise ValueError(f"unknown tier {value!r}")
        return value


@dataclass(frozen=True)
class VerifiedLicence:
    token: str
    claims: LicenceClaims
    status: Literal["valid", "grace"]
    kid: str
    seconds_left: int  # until exp; negative in grace

    @property
    def days_left(self) -> int:
        return self.seconds_left // 86400

def issue_licence(
    store: "HQKeyStore",
    site: str,
    tier: str,
    categories: list[str],
    days: int,
    hq_url: str,
    registry: dict[str, Any] | None = None,
    features: list[str] | None = None,
    regions: list[str] | None = None,
    revenue_share_bps: int | None = None,
    now: int | None = None,
    jti: str | None = None,
) -> str:
    """Sign a licence for `site`; every argument is validated first."""
    spec = get_tier(tier)
    if not SITE_ID.fullmatch(site):
        raise InvalidInput(f"site id {site!r} must be 2-63 lowercase letters, digits or '-'")
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown or not categories:
        raise InvalidInput(f"unknown categories {unknown} (known: {', '.join(CATEGORIES)})")
    if len(categories) > spec.max_categories:
        raise InvalidInput(f"tier {tier} allows at most {spec.max_categories} categories, got {len(categories)}")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"--days must be between 1 and {MAX_DAYS}")
    issued = int(time.time()) if now is None else now
    claims = {
        "iss": ISSUER,
        "sub": site,
        "jti": jti or uuid.uuid4().hex,
        "iat": issued,
        "nbf": issued,
        "exp": issued + days * 86400,
        "tier": tier,
        "features": list(features if features is not None else spec.features),
        "categories": list(dict.fromkeys(categories)),
        "regions": list(regions or ["CN"]),
        "revenue_share_bps": spec.revenue_share_bps if revenue_share_bps is None else revenue_share_bps,
        "hq_url": hq_url,
    }
    if registry is not None:
        claims["registry"] = registry
    _validate(claims)  # never sign what we would refuse to verify
    return jws.sign(claims, store, LICENCE_TYP)


def verify_licence(token: Any, keys: PinnedKeys, now: float | None = None) -> VerifiedLicence:
    """Verify signature, claims and validity window; LicenceError otherwise."""
    payload = jws.verify(token, keys, LICENCE_TYP, what="licence")
    claims = _validate(payload)
    moment = time.time() if now is None else now
    if claims.iss != ISSUER:
        raise LicenceError(f"licence rejected: issuer {claims.iss!r} is not {ISSUER!r}")
    if claims.nbf > moment + CLOCK_SKEW_SECONDS or claims.iat > moment + CLOCK_SKEW_SECONDS:
        raise LicenceError("licence rejected: not valid yet (nbf/iat in the future; check the clock)")
    if claims.exp <= claims.nbf:
        raise LicenceError("licence rejected: exp is not after nbf")
    left = int(claims.exp - moment)
    if left < -(GRACE_SECONDS + CLOCK_SKEW_SECONDS):
        raise LicenceError(f"licence rejected: expired {(-left) // 86400} days ago, beyond the grace period")
    status: Literal["valid", "grace"] = "valid" if left > -CLOCK_SKEW_SECONDS else "grace"
    kid = jws.header_kid(token)
    return VerifiedLicence(token=token.strip(), claims=claims, status=status, kid=kid, seconds_left=left)


def _validate(payload: dict[str, Any]) -> LicenceClaims:
    try:
        return LicenceClaims.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "claims"
        if err["type"] == "missing":
            raise LicenceError(f"licence rejected: required claim {field!r} is missing") from None
        raise LicenceError(f"licence rejected: claim {field!r}: {err['msg']}") from None
