"""The contract every payment gateway plugin implements: create, verify a notification, query, refund.

Amounts cross it in integer fen (cents) and are turned into the gateway's own
spelling (`"12.34"`) only inside the plugin. Plugins register under the
`kitctl.hq_gateways` entry-point group (hq.payments.registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping, Protocol, runtime_checkable

from hq.errors import Unavailable


class GatewayError(Unavailable):
    """The gateway could not be reached or answered with an error (one line, no secrets).

    Raised while an order batch's transaction is open (Alipay and WeChat Pay are asked
    then), it answers the batch 503: nothing is stored, the agent sends it again."""

    what = "payment gateway"
    code = "payment_gateway_unavailable"


class Forged(Exception):
    """A notification whose signature, merchant or form does not verify: refused and counted."""


class Notification(dict[str, str]):
    """A notification's fields (query string and form), with the request's headers and raw body.

    Form-based gateways (epay, Alipay) read the fields; a gateway that signs the
    body itself (WeChat Pay API v3: JSON, signature in `Wechatpay-*` headers)
    reads `headers` (lower-case names) and `body`.
    """

    def __init__(self, fields: Mapping[str, str], headers: Mapping[str, str] | None = None,
                 body: bytes = b"") -> None:
        super().__init__(fields)
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.body = body


@dataclass(frozen=True)
class PaymentRequest:
    out_trade_no: str
    amount_cents: int
    currency: str
    subject: str
    notify_url: str
    return_url: str


@dataclass(frozen=True)
class PayLink:
    """Where the buyer pays: a link to open, and the content of the QR code to scan (often the same)."""

    pay_url: str
    qr_content: str


@dataclass(frozen=True)
class Notice:
    """A verified statement by the gateway that `out_trade_no` was paid `amount_cents` (or not yet)."""

    out_trade_no: str
    trade_no: str
    amount_cents: int
    currency: str
    paid: bool


@dataclass(frozen=True)
class Refund:
    out_trade_no: str
    amount_cents: int
    accepted: bool
    message: str


class Gateway(Protocol):
    """A payment gateway. One whose `create` asks the gateway over the network (Alipay's precreate, WeChat Pay's
    Native order) says so with a class attribute `creates_remotely = True`: HQ then asks for an order batch's links
    before the batch's transaction opens (hq.batch), so a slow gateway holds no lock."""

    name: str
    currency: str  # the only currency this merchant account takes

    def create(self, request: PaymentRequest) -> PayLink:
        """The link and QR content the buyer pays with."""

    def verify(self, params: Mapping[str, str]) -> Notice:
        """The notification's facts if it verifies; raises Forged otherwise."""

    def ack(self) -> str:
        """The body the gateway expects once a notification is handled (so it stops retrying)."""

    def query(self, out_trade_no: str) -> Notice | None:
        """The gateway's record of the payment (None: it has none)."""

    def refund(self, out_trade_no: str, amount_cents: int) -> Refund:
        """Give `amount_cents` of a paid payment back."""


@dataclass(frozen=True)
class Record:
    """One payment in the gateway's own books (what the daily reconciliation compares with HQ's)."""

    out_trade_no: str
    trade_no: str
    amount_cents: int
    paid: bool
    created_at: datetime | None  # aware, UTC
    paid_at: datetime | None
    refunded_cents: int | None = None  # what the gateway gave back; None: its books do not say


@runtime_checkable
class Listing(Protocol):
    """What a gateway offers for reconciliation, beside the contract (a gateway without it is reported so)."""

    def records(self, start: datetime, end: datetime) -> list[Record]:
        """Every payment the gateway opened or saw paid in [start, end) (aware datetimes); raises GatewayError
        when it cannot give them all."""

    def record(self, out_trade_no: str) -> Record | None:
        """One trade as the gateway's books hold it (its refunds included when they say), None when it has none."""


@runtime_checkable
class Probe(Protocol):
    """A connection test beside the contract (`kitctl hq payments test`): reach the gateway, have it check the
    credentials, change nothing there."""

    def probe(self) -> str:
        """One line on what answered; raises GatewayError when the gateway cannot be reached or refuses them."""


def yuan(cents: int) -> str:
    """Integer fen as the gateways spell money: `1234` → `"12.34"`."""
    if cents < 0:
        raise ValueError("amount must not be negative")
    return f"{cents // 100}.{cents % 100:02d}"


def cents(text: str) -> int:
    """`"12.34"` → 1234; raises Forged for anything that is not an exact amount with at most two decimals."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise Forged("amount is not a number") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise Forged("amount is not a whole number of fen")
    return int(value * 100)
