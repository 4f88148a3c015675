"""What a buyer pays for an order: one rule, read by the order paths, the payment and the ledger."""

from __future__ import annotations


def charge_cents(unit_price_cents: int, quantity: int, total_cents: int | None) -> int:
    """The site's total when it sent one (its discount taken off), else the list price × quantity."""
    return int(unit_price_cents) * quantity if total_cents is None else int(total_cents)
