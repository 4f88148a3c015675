"""A site's selling price from HQ's price and the site's markup rules.

Shared by the agent (which prices every synced SKU) and the storefront
(which previews a rule in its admin). One explicit kind per rule: `percent`
(value in basis points) or `fixed` (value in cents); then a rounding rule;
then the floor: a site never sells below HQ's price.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

ROUNDINGS = ("none", "jiao", "yuan", "yuan_minus_1")
KINDS = ("percent", "fixed")
SCOPES = ("all", "category", "sku")
_SPECIFICITY = {"sku": 3, "category": 2, "all": 1}


class RuleLike(Protocol):
    id: int
    scope: str
    target: str | None
    kind: str
    value: int
    rounding: str
    enabled: bool


def selling_price(hq_price_cents: int, rule: RuleLike | None) -> int:
    """HQ price with `rule`'s markup and rounding, never below the HQ price."""
    if rule is None:
        return hq_price_cents
    if rule.kind == "percent":
        raw = (hq_price_cents * (10000 + rule.value) + 5000) // 10000  # half up, integer only
    elif rule.kind == "fixed":
        raw = hq_price_cents + rule.value
    else:
        raise ValueError(f"unknown price rule kind {rule.kind!r} (known: {', '.join(KINDS)})")
    return max(round_price(raw, rule.rounding), hq_price_cents)


def round_price(cents: int, rounding: str) -> int:
    """Round up (never down, so a markup is never lost): to 0.1 yuan, 1 yuan, or x.99."""
    if rounding == "none":
        return cents
    if rounding == "jiao":
        return -(-cents // 10) * 10
    if rounding == "yuan":
        return -(-cents // 100) * 100
    if rounding == "yuan_minus_1":
        return -(-(cents + 1) // 100) * 100 - 1
    raise ValueError(f"unknown rounding {rounding!r} (known: {', '.join(ROUNDINGS)})")


def choose_rule(item: Any, rules: Iterable[RuleLike]) -> RuleLike | None:
    """The most specific enabled rule for `item` (sku > category > all; newest id on a tie).

    `item` is anything with `sku` and `category`, as attributes or mapping keys.
    """
    sku, category = _field(item, "sku"), _field(item, "category")
    best: RuleLike | None = None
    best_key = (0, 0)
    for rule in rules:
        if not rule.enabled or not _applies(rule, sku, category):
            continue
        key = (_SPECIFICITY.get(rule.scope, 0), rule.id or 0)
        if key > best_key:
            best, best_key = rule, key
    return best


def _applies(rule: RuleLike, sku: str, category: str) -> bool:
    if rule.scope == "all":
        return True
    if rule.scope == "category":
        return rule.target == category
    if rule.scope == "sku":
        return rule.target == sku
    return False


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)
