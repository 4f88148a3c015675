"""The coupons admin form: what a person types, turned into the coupons plugin's `add` arguments.

The plugin validates the arguments again (code pattern, ranges); this only
turns the page's words into its fields: a percent or an amount in yuan, an
optional use limit and categories.
"""

from __future__ import annotations

from typing import Any, Callable

KINDS = ("percent", "fixed")


class FormRefused(Exception):
    """{field: message} for the page; nothing was written."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def add_arguments(form: dict[str, str], t: Callable[..., str]) -> dict[str, Any]:
    """`add` arguments from the form, or FormRefused naming each bad field in the page's language."""
    errors: dict[str, str] = {}
    kind, amount = form.get("kind", ""), form.get("amount", "").strip()
    values: dict[str, Any] = {"code": form.get("code", "").strip(), "categories": form.get("categories", "")}
    if kind not in KINDS:
        errors["kind"] = t("coupons.err_kind")
    elif kind == "percent":
        values["percent"] = _whole(amount, 1, 100, errors, "amount", t("coupons.err_percent"))
    else:
        values["fixed_cents"] = _cents(amount, errors, t("coupons.err_amount"))
    if form.get("max_uses", "").strip():
        values["max_uses"] = _whole(form["max_uses"].strip(), 1, 10**9, errors, "max_uses", t("coupons.err_max_uses"))
    if errors:
        raise FormRefused(errors)
    return values


def _whole(raw: str, low: int, high: int, errors: dict[str, str], field: str, message: str) -> int | None:
    if raw.isdigit() and low <= int(raw) <= high:
        return int(raw)
    errors[field] = message
    return None


def _cents(raw: str, errors: dict[str, str], message: str) -> int | None:
    from storefront.money import parse_money

    try:
        cents = parse_money(raw)
    except ValueError:
        cents = 0
    if not 0 < cents <= 10**9:
        errors["amount"] = message
        return None
    return cents
