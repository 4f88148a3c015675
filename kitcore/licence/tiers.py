"""What each licence tier grants: data, not code branches.

A feature is a capability the kit or a plugin checks for by name; a plugin
declares the feature it needs, and it loads only when the licence carries it.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    name: str
    features: tuple[str, ...]
    max_categories: int
    revenue_share_bps: int  # HQ's share of revenue, in basis points


TIERS: dict[str, Tier] = {
    "basic": Tier(
        name="basic",
        features=("storefront", "standard-theme"),
        max_categories=2,
        revenue_share_bps=1500,
    ),
    "pro": Tier(
        name="pro",
        features=("storefront", "standard-theme", "coupons", "notify", "api-access"),
        max_categories=6,
        revenue_share_bps=1200,
    ),
    "flagship": Tier(
        name="flagship",
        features=(
            "storefront",
            "standard-theme",
            "custom-theme",
            "coupons",
            "notify",
            "regional-pricing",
            "api-access",
            "custom-plugins",
        ),
        max_categories=100,
        revenue_share_bps=800,
    ),
}

CATEGORIES: tuple[str, ...] = ("game", "phone", "membership", "gift", "software", "video")


def tier(name: str) -> Tier:
    """The tier called `name`, or a one-line error listing the known ones."""
    from kitcore.errors import InvalidInput

    try:
        return TIERS[name]
    except KeyError:
        raise InvalidInput(f"unknown tier {name!r} (known: {', '.join(TIERS)})") from None


def lowest_tier_with(feature: str) -> str | None:
    """The cheapest tier that grants `feature`, to name it in refusals."""
    for t in TIERS.values():
        if feature in t.features:
            return t.name
    return None
