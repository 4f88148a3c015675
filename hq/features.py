"""The licence features HQ may grant: the one place that decides which names are known.

They are the features of the tiers (`kitcore.licence.tiers`) plus those an operator registered for a
third party's plugin (`kitctl hq features register`, table `licence_features`). The API's schema checks a
feature's form; whether HQ knows it is checked here, with the database, before any token is signed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import StringConstraints
from sqlalchemy import select

from kitcore.errors import InvalidInput
from kitcore.licence.tiers import TIERS
from hq import audit
from hq.clock import utcnow
from hq.errors import ApiError
from hq.models import RegisteredFeature

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hq.service import HQ

NAME_PATTERN = r"^[a-z][a-z0-9-]{1,39}$"  # pydantic's `$` is the very end; FEATURE_NAME uses fullmatch
FEATURE_NAME = re.compile(NAME_PATTERN)
TIER_FEATURES: tuple[str, ...] = tuple(dict.fromkeys(f for tier in TIERS.values() for f in tier.features))

Feature = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


def known(session: "Session") -> tuple[str, ...]:
    """Every feature name a licence may carry, the tiers' first, in a stable order."""
    registered = session.scalars(select(RegisteredFeature.name).order_by(RegisteredFeature.name)).all()
    return TIER_FEATURES + tuple(registered)


def check(session: "Session", names: list[str]) -> None:
    """InvalidInput naming the first feature HQ does not know, and the known ones."""
    names_known = known(session)
    for name in names:
        if name not in names_known:
            raise InvalidInput(f"unknown feature {name!r} (known: {', '.join(names_known)}; "
                               "a third party's feature is registered with `kitctl hq features register`)")


def register(hq: "HQ", operator: str, name: str, description: str, vendor: str) -> dict[str, Any]:
    """Make `name` grantable; refused when malformed, a tier's own, or already registered."""
    _check_text(name, description, vendor)
    with hq.session() as session:
        if name in TIER_FEATURES or session.get(RegisteredFeature, name) is not None:
            raise ApiError(409, "feature_exists", f"feature {name!r} is already known")
        row = RegisteredFeature(name=name, description=description, vendor=vendor, registered_by=operator,
                                registered_at=utcnow())
        session.add(row)
        audit.record(session, operator, "feature.register", None, feature=name, vendor=vendor)
        return describe(row)


def listed(hq: "HQ") -> list[dict[str, Any]]:
    """The tiers' features and the registered ones, each with where it comes from."""
    with hq.session() as session:
        rows = session.scalars(select(RegisteredFeature).order_by(RegisteredFeature.name)).all()
        tiers = [{"name": f, "source": "tier", "description": f"granted by tier {_lowest_tier(f)} and above",
                  "vendor": "HQ", "registered_by": None, "registered_at": None} for f in TIER_FEATURES]
        return tiers + [describe(r) for r in rows]


def describe(row: RegisteredFeature) -> dict[str, Any]:
    return {"name": row.name, "source": "registered", "description": row.description, "vendor": row.vendor,
            "registered_by": row.registered_by, "registered_at": row.registered_at.isoformat()}


def _check_text(name: str, description: str, vendor: str) -> None:
    if not FEATURE_NAME.fullmatch(name):
        raise ApiError(422, "invalid_feature", f"feature name {name!r} must be lowercase letters, digits and '-' (2-40)")
    for label, text, most in (("description", description, 200), ("vendor", vendor, 80)):
        if not text or len(text) > most or any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in text):  # = the API schema
            raise ApiError(422, "invalid_feature", f"{label} must be one line of 1-{most} characters")


def _lowest_tier(feature: str) -> str:
    return next(t.name for t in TIERS.values() if feature in t.features)
