"""Request and response bodies of the HQ API (pydantic; they make /openapi.json)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from hq.features import Feature
from hq.amounts import charge_cents
from hq.fields import (ORDER_ID_PATTERN, SITE_ID_PATTERN, Account, Contact, Domain, Licensee, Region, SiteId, Sku,
                       Timestamp, integer, text, unique)
from kitcore.licence.tiers import CATEGORIES, TIERS
from kitcore.upgrade_window import WINDOW_PATTERN


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Buyer(Strict):
    account: Account | None = None
    contact: Contact
    ip: str | None = Field(default=None, max_length=64, pattern=r"^[0-9A-Fa-f:.]+$")
    region: Region | None = None


class OrderIn(Strict):
    order_id: str = Field(pattern=ORDER_ID_PATTERN)
    sku: Sku
    quantity: integer(1, 10000)  # type: ignore[valid-type]
    unit_price_cents: integer(0, 10**11)  # type: ignore[valid-type]
    total_cents: integer(0, 10**15) | None = Field(  # type: ignore[valid-type]
        default=None, description="what the buyer was shown and pays: unit_price_cents × quantity less the site's "
        "discount (coupon); never more than that; absent: unit_price_cents × quantity")
    currency: Literal["CNY"]
    buyer: Buyer
    created_at: Timestamp

    @property
    def charge_cents(self) -> int:
        """What the buyer pays for this order (the discount included)."""
        return charge_cents(self.unit_price_cents, self.quantity, self.total_cents)


class OrderBatch(Strict):
    orders: list[OrderIn] = Field(min_length=1, max_length=200)


IMAGE_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"  # kitcore.images.IMAGE_TAG
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class UpgradeReport(Strict):
    """What a site's host service did with an `upgrade` command (hq.rollouts), and its settings.

    `command_id`, `version` and `outcome` come together, or not at all (a report of the settings only:
    the host service sends one when its window or opt-out changes); checked by the endpoint
    (422 `incomplete_report`), a rule across fields the schema does not state."""

    command_id: Annotated[str, Field(pattern=UUID_PATTERN)] | None = None
    version: Annotated[str, Field(pattern=IMAGE_TAG_PATTERN)] | None = None  # the version the site runs now
    outcome: Literal["upgraded", "rolled_back", "waiting", "opted_out"] | None = None
    previous: Annotated[str, Field(pattern=IMAGE_TAG_PATTERN)] | None = None  # what it ran before the command
    detail: text(300) = ""  # type: ignore[valid-type]
    window: Annotated[str, Field(pattern=WINDOW_PATTERN, max_length=64)] | None = None  # None: any time
    auto_upgrade: StrictBool | None = None  # False: the licensee opted out of automatic upgrades



class OrderIds(Strict):
    order_ids: Annotated[list[Annotated[str, Field(pattern=ORDER_ID_PATTERN)]],
                         Field(min_length=1, max_length=200, json_schema_extra={"uniqueItems": True}),
                         AfterValidator(unique)]


class CardKeyOut(BaseModel):
    serial: str
    secret: str


class Delivery(BaseModel):
    card_keys: list[CardKeyOut]


class PaymentOut(BaseModel):
    """Where the buyer pays an approved order (a gateway is enabled at HQ): the link and the QR code's content."""

    gateway: str
    pay_url: str
    qr: str
    amount_cents: int
    currency: str
    expires_at: str
    status: Literal["pending", "paid", "held", "expired", "refunding", "refunded"]


class OrderResult(BaseModel):
    order_id: str
    hq_order_id: str
    decision: Literal["approve", "review", "reject"]
    status: Literal["delivered", "review", "rejected", "pending_payment", "expired", "refunded"]
    reasons: list[str]
    delivery: Delivery | None
    replayed: bool
    payment: PaymentOut | None = None


class OrderResults(BaseModel):
    results: list[OrderResult]


class CatalogPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


class HeartbeatIn(Strict):
    version: text(64, min_length=1)  # type: ignore[valid-type]
    applied_seq: integer(0, 2**31 - 1)  # type: ignore[valid-type]
    health: dict[str, Any] = Field(default_factory=dict)
    counters: dict[str, Any] = Field(default_factory=dict)


class LicenceStatus(BaseModel):
    status: Literal["active", "suspended", "revoked", "expired"]
    reason: str | None


class HeartbeatOut(BaseModel):
    interval_seconds: int
    licence: LicenceStatus
    commands: list[str]
    server_time: int


# -- admin -----------------------------------------------------------------

SITE_ID = SITE_ID_PATTERN
Category = Literal[CATEGORIES]  # type: ignore[valid-type]
TierName = Literal[tuple(TIERS)]  # type: ignore[valid-type]
Categories = Annotated[list[Category], Field(min_length=1, max_length=len(CATEGORIES),  # type: ignore[valid-type]
                                             json_schema_extra={"uniqueItems": True}), AfterValidator(unique)]
Features = Annotated[list[Feature], Field(max_length=64, json_schema_extra={"uniqueItems": True}),
                     AfterValidator(unique)]
Regions = Annotated[list[Region], Field(max_length=64, json_schema_extra={"uniqueItems": True}),
                    AfterValidator(unique)]


def tier_category_limits(default_tier: str | None) -> list[dict[str, Any]]:
    """JSON Schema `if/then` per tier: at most `max_categories` categories (the tier may be the default)."""
    rules = []
    for name, spec in TIERS.items():
        if spec.max_categories >= len(CATEGORIES):
            continue
        when: dict[str, Any] = {"properties": {"tier": {"const": name}}}
        if name != default_tier:  # an absent tier is the default one
            when["required"] = ["tier"]
        rules.append({"if": when, "then": {"properties": {"categories": {"maxItems": spec.max_categories}}}})
    return rules


def _check_tier_categories(tier: str | None, categories: list[str] | None) -> None:
    if tier is not None and categories is not None and len(categories) > TIERS[tier].max_categories:
        raise ValueError(f"categories: tier {tier} allows at most {TIERS[tier].max_categories}, got {len(categories)}")


class LicenceIssue(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": tier_category_limits("basic")})
    site: SiteId
    tier: TierName = "basic"
    categories: Categories
    days: integer(1, 3660) = 365  # type: ignore[valid-type]
    features: Features | None = None
    regions: Regions | None = Field(default=None, description="empty or absent: [\"CN\"]")
    revenue_share_bps: integer(0, 10000) | None = None  # type: ignore[valid-type]
    licensee: Licensee | None = Field(default=None, description="who runs the site (the fleet page searches it)")
    domain: Domain | None = Field(default=None, description="the shop's host name (the fleet page searches it)")

    @model_validator(mode="after")
    def _tier_limit(self) -> "LicenceIssue":
        _check_tier_categories(self.tier, self.categories)
        return self


class Reason(Strict):
    reason: text(500, min_length=1)  # type: ignore[valid-type]


class Suspension(Strict):
    reason: text(500, min_length=1)  # type: ignore[valid-type]
    days: integer(1, 3650) | None = Field(default=None, description="lifted by HQ after this many days; "  # type: ignore[valid-type]
                                          "absent: until resumed")


class LicenceUpgrade(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": tier_category_limits(None)})
    tier: TierName | None = None
    categories: Categories | None = None
    features: Features | None = None
    regions: Regions | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _tier_limit(self) -> "LicenceUpgrade":
        _check_tier_categories(self.tier, self.categories)
        return self


class LicenceRenew(Strict):
    days: integer(1, 3660)  # type: ignore[valid-type]


class FeatureRegistration(Strict):
    """A third party's licence feature, made grantable (`licence_features`)."""

    name: Feature
    description: text(200, min_length=1)  # type: ignore[valid-type]
    vendor: text(80, min_length=1)  # type: ignore[valid-type]


class FeatureOut(BaseModel):
    name: str
    source: Literal["tier", "registered"]
    description: str
    vendor: str
    registered_by: str | None
    registered_at: str | None


class LicenceOut(BaseModel):
    site: str
    jti: str
    status: str
    reason: str | None
    suspended_until: str | None = None
    tier: str
    categories: list[str]
    features: list[str]
    regions: list[str]
    revenue_share_bps: int
    issued_at: str | None
    expires_at: str | None
    issued_by: str
    token: str | None = None


class ReviewResolve(Strict):
    decision: Literal["approve", "reject"]
    note: text(500) | None = None  # type: ignore[valid-type]
