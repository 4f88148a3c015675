"""What each tier grants, written out: a change to the tier table must change this file too."""

from __future__ import annotations

import pytest

from kitcore.errors import InvalidInput
from kitcore.licence.tiers import CATEGORIES, TIERS, lowest_tier_with, tier

EXPECTED = {
    # name: (features, max categories, HQ's revenue share in basis points)
    "basic": ({"storefront", "standard-theme"}, 2, 1500),
    "pro": ({"storefront", "standard-theme", "coupons", "notify", "api-access"}, 6, 1200),
    "flagship": ({"storefront", "standard-theme", "custom-theme", "coupons", "notify", "regional-pricing",
                  "api-access", "custom-plugins"}, 100, 800),
}


def test_the_tier_table():
    assert list(TIERS) == ["basic", "pro", "flagship"]  # cheapest first: refusals name the lowest tier
    assert {name: (set(t.features), t.max_categories, t.revenue_share_bps) for name, t in TIERS.items()} == EXPECTED
    assert all(t.name == name for name, t in TIERS.items())
    assert CATEGORIES == ("game", "phone", "membership", "gift", "software", "video")


@pytest.mark.parametrize("feature, lowest", [("storefront", "basic"), ("standard-theme", "basic"), ("coupons", "pro"),
                                             ("notify", "pro"), ("api-access", "pro"), ("custom-theme", "flagship"),
                                             ("regional-pricing", "flagship"), ("custom-plugins", "flagship"),
                                             ("teleport", None)])
def test_the_lowest_tier_with_a_feature(feature, lowest):
    assert lowest_tier_with(feature) == lowest


def test_an_unknown_tier_is_one_line_naming_the_known_ones():
    assert tier("pro") is TIERS["pro"]
    with pytest.raises(InvalidInput, match=r"^unknown tier 'gold' \(known: basic, pro, flagship\)$"):
        tier("gold")


def test_issued_licences_carry_their_tier(issue, pinned):
    from kitcore.licence.token import verify_licence

    for name, (features, max_categories, share) in EXPECTED.items():
        claims = verify_licence(issue(tier=name, categories=list(CATEGORIES[:2])), pinned).claims
        assert (claims.tier, set(claims.features), claims.revenue_share_bps) == (name, features, share)
    with pytest.raises(InvalidInput, match="tier basic allows at most 2 categories, got 3"):
        issue(tier="basic", categories=["game", "phone", "gift"])
    assert verify_licence(issue(tier="pro", categories=list(CATEGORIES)), pinned).claims.categories == list(CATEGORIES)
