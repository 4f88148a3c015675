"""The shared pricing rules: markups, rounding, specificity, and the HQ-price floor."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from sitedb.pricing import ROUNDINGS, choose_rule, price_item, rounded, selling_price


def rule(**kw):
    base = {"id": 1, "scope": "all", "target": None, "kind": "percent", "value": 1000, "rounding": "none", "enabled": True}
    base.update(kw)
    return base


def test_no_rule_sells_at_hq_price():
    assert selling_price(1234, None) == 1234


def test_percent_markup_rounds_half_up_to_the_fen():
    assert selling_price(1000, rule(value=1000)) == 1100
    assert selling_price(1005, rule(value=1000)) == 1106  # 1105.5 -> 1106


def test_fixed_markup_adds_cents():
    assert selling_price(1000, rule(kind="fixed", value=250)) == 1250


@pytest.mark.parametrize(
    "price,mode,expected",
    [(1101, "jiao", 1110), (1110, "jiao", 1110), (1101, "yuan", 1200), (1200, "yuan", 1200),
     (1101, "yuan_minus_1", 1199), (1200, "yuan_minus_1", 1299), (1199, "yuan_minus_1", 1199)],
)
def test_rounding_goes_up_to_friendly_figures(price, mode, expected):
    assert rounded(price, mode) == expected


def test_negative_markup_never_goes_below_hq_price():
    assert selling_price(1000, rule(value=-5000)) == 1000
    assert selling_price(1000, rule(kind="fixed", value=-1)) == 1000


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        selling_price(1000, rule(kind="double"))


def test_most_specific_enabled_rule_wins():
    item = {"sku": "G-100", "category": "game", "hq_price_cents": 1000}
    rules = [rule(id=1, scope="all", value=500), rule(id=2, scope="category", target="game", value=1000),
             rule(id=3, scope="sku", target="G-100", value=2000, enabled=False), rule(id=4, scope="category", target="phone", value=9000)]
    assert choose_rule(item, rules)["id"] == 2
    assert price_item(item, rules) == (1100, 2)
    rules[2]["enabled"] = True
    assert price_item(item, rules) == (1200, 3)
    assert price_item({"sku": "X", "category": "other", "hq_price_cents": 1000}, rules) == (1050, 1)
    assert price_item({"sku": "X", "category": "other", "hq_price_cents": 1000}, []) == (1000, None)


def test_newest_rule_wins_a_tie_regardless_of_order():
    item = {"sku": "A", "category": "game"}
    rules = [rule(id=7, scope="category", target="game"), rule(id=3, scope="category", target="game")]
    assert choose_rule(item, rules)["id"] == 7
    assert choose_rule(item, list(reversed(rules)))["id"] == 7


@given(hq=st.integers(0, 10**9), kind=st.sampled_from(["percent", "fixed"]), value=st.integers(-10**6, 10**6),
       rounding=st.sampled_from(ROUNDINGS))
def test_selling_price_is_never_below_hq_price(hq, kind, value, rounding):
    price = selling_price(hq, rule(kind=kind, value=value, rounding=rounding))
    assert price >= hq
    if value >= 0 and rounding == "none":
        assert price >= hq + (value if kind == "fixed" else 0)
