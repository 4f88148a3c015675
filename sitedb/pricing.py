"""Selling prices from price rules: one pure module shared by the agent and the storefront.

The agent applies rules when it syncs the catalog; the storefront's admin
previews a rule's effect and re-prices the catalog when a rule is saved. Both
call the same functions so the price a buyer sees is the price the agent
would compute. Money is integer minor units (fen); a selling price is never
below the HQ price, whatever the rule says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

KINDS = ("percent", "fixed")  # percent: value in basis points; fixed: value in cents
SCOPES = ("all", "category", "sku")
ROUNDINGS = ("none", "jiao", "yuan", "yuan_minus_1")
_SPECIFICITY = {"sku": 3, "category": 2, "all": 1}


@dataclass(frozen=True)
class Rule:
    """A price rule: the one definition of its fields (the columns of `sitedb.tables.price_rules`).

    The agent reads rules as these to price its sync, the storefront's admin
    validates a form into one before it previews and saves it. `id` is None
    for a rule not saved yet.
    """

    scope: str  # one of SCOPES
    target: str | None  # the category or SKU; None for scope "all"
    kind: str  # one of KINDS
    value: int  # basis points (percent) or cents (fixed)
    rounding: str  # one of ROUNDINGS
    enabled: bool
    id: int | None = None


RULE_FIELDS = tuple(f.name for f in fields(Rule))


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from an ORM row, a dataclass or a plain dict alike."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def marked_up(hq_price_cents: int, kind: str, value: int) -> int:
    """The HQ price plus the markup, before rounding (percent rounds half up to the fen)."""
    if kind == "percent":
        return (hq_price_cents * (10_000 + value) + 5_000) // 10_000
    if kind == "fixed":
        return hq_price_cents + value
    raise ValueError(f"unknown price rule kind {kind!r} (expected percent or fixed)")


def rounded(price_cents: int, rounding: str) -> int:
    """Round a price up to a buyer-friendly figure; never rounds down."""
    if rounding == "none":
        return price_cents
    if rounding == "jiao":
        return -(-price_cents // 10) * 10
    if rounding == "yuan":
        return -(-price_cents // 100) * 100
    if rounding == "yuan_minus_1":  # ¥12.99 style: the next whole yuan minus one fen, at or above the price
        candidate = -(-price_cents // 100) * 100 - 1
        return candidate if candidate >= price_cents else candidate + 100
    raise ValueError(f"unknown rounding {rounding!r} (expected one of {', '.join(ROUNDINGS)})")


def selling_price(hq_price_cents: int, rule: Any | None) -> int:
    """The price a buyer pays for one unit under `rule` (None = sell at the HQ price).

    `rule` is a `sitedb.models.PriceRule` or anything with `kind`, `value`,
    `rounding` (attributes or mapping keys). The result is never below
    `hq_price_cents`, so a negative or mistaken rule cannot sell at a loss.
    """
    if hq_price_cents < 0:
        raise ValueError("hq_price_cents must not be negative")
    if rule is None:
        return hq_price_cents
    price = marked_up(hq_price_cents, _get(rule, "kind"), int(_get(rule, "value", 0)))
    price = rounded(price, _get(rule, "rounding", "none") or "none")
    return max(price, hq_price_cents)


def rule_applies(item: Any, rule: Any) -> bool:
    """Whether an enabled `rule` covers `item` (an item has `sku` and `category`)."""
    if not _get(rule, "enabled", True):
        return False
    scope = _get(rule, "scope")
    if scope == "all":
        return True
    if scope == "category":
        return _get(rule, "target") == _get(item, "category")
    if scope == "sku":
        return _get(rule, "target") == _get(item, "sku")
    return False


def choose_rule(item: Any, rules: Iterable[Any]) -> Any | None:
    """The rule that prices `item`: the most specific enabled one (sku > category > all).

    Among rules of the same scope and target the newest (highest id) wins, so
    the choice does not depend on the order the rules were read in.
    """
    best = None
    best_key: tuple[int, int] | None = None
    for rule in rules:
        if not rule_applies(item, rule):
            continue
        key = (_SPECIFICITY.get(_get(rule, "scope"), 0), int(_get(rule, "id", 0) or 0))
        if best_key is None or key > best_key:
            best, best_key = rule, key
    return best


def price_item(item: Any, rules: Iterable[Any]) -> tuple[int, int | None]:
    """(selling price, id of the rule used or None) for a catalog item with `hq_price_cents`."""
    rule = choose_rule(item, rules)
    price = selling_price(int(_get(item, "hq_price_cents")), rule)
    return price, (_get(rule, "id") if rule is not None else None)
