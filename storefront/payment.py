"""The payment step as a plugin point.

HQ's unified payment policy decides how buyers pay; new methods need HQ's
approval, so the storefront ships only one built-in mode: "hq_approval", a
test mode in which an order is settled when HQ approves it (the agent records
the decision). No other code path marks an order paid. An unknown mode makes
checkout refuse with a clear message instead of pretending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PaymentMethod(Protocol):
    name: str

    def start(self, order_id: str, total_cents: int, currency: str) -> dict[str, str]:
        """Return what to record in the order's extras about the payment step."""
        ...


@dataclass(frozen=True)
class PayOnHQApproval:
    """Test mode: nothing is charged here; HQ's approval settles the order."""

    name: str = "hq_approval"

    def start(self, order_id: str, total_cents: int, currency: str) -> dict[str, str]:
        return {"mode": self.name, "state": "awaiting_hq_decision"}


_METHODS: dict[str, PaymentMethod] = {"hq_approval": PayOnHQApproval()}


def register(method: PaymentMethod) -> None:
    """Where an HQ-approved payment plugin adds itself."""
    _METHODS[method.name] = method


def payment_method(name: str) -> PaymentMethod | None:
    return _METHODS.get(name)
