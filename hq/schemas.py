"""Request and response bodies of the HQ API (pydantic; they make /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kitcore.licence.tiers import CATEGORIES

SAFE_TEXT = r"^[^\x00-\x1f\x7f]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str
    detail: str


class Buyer(Strict):
    account: str | None = Field(default=None, max_length=128, pattern=SAFE_TEXT)
    contact: str = Field(min_length=1, max_length=128, pattern=SAFE_TEXT)
    ip: str | None = Field(default=None, max_length=64, pattern=r"^[0-9A-Fa-f:.]+$")
    region: str | None = Field(default=None, max_length=16, pattern=r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,8})?$")


class OrderIn(Strict):
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    quantity: int = Field(ge=1, le=10000)
    unit_price_cents: int = Field(ge=0, le=10**11)
    currency: Literal["CNY"]
    buyer: Buyer
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _bounded_year(cls, value: datetime) -> datetime:
        if not 2000 <= value.year <= 2200:
            raise ValueError("created_at is not a plausible time")
        return value


class OrderBatch(Strict):
    orders: list[OrderIn] = Field(min_length=1, max_length=200)


class CardKeyOut(BaseModel):
    serial: str
    secret: str


class Delivery(BaseModel):
    card_keys: list[CardKeyOut]


class OrderResult(BaseModel):
    order_id: str
    hq_order_id: str
    decision: Literal["approve", "review", "reject"]
    status: Literal["delivered", "review", "rejected"]
    reasons: list[str]
    delivery: Delivery | None
    replayed: bool


class OrderResults(BaseModel):
    results: list[OrderResult]


class CatalogPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


class HeartbeatIn(Strict):
    version: str = Field(min_length=1, max_length=64, pattern=SAFE_TEXT)
    applied_seq: int = Field(ge=0, le=2**31 - 1)
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

SITE_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"
Category = Literal[CATEGORIES]  # type: ignore[valid-type]


class LicenceIssue(Strict):
    site: str = Field(pattern=SITE_ID)
    tier: Literal["basic", "pro", "flagship"] = "basic"
    categories: list[Category] = Field(min_length=1, max_length=64)  # type: ignore[valid-type]
    days: int = Field(default=365, ge=1, le=3660)
    features: list[str] | None = Field(default=None, max_length=64)
    regions: list[str] | None = Field(default=None, max_length=64)
    revenue_share_bps: int | None = Field(default=None, ge=0, le=10000)


class Reason(Strict):
    reason: str = Field(min_length=1, max_length=500, pattern=SAFE_TEXT)


class LicenceUpgrade(Strict):
    tier: Literal["basic", "pro", "flagship"] | None = None
    categories: list[Category] | None = Field(default=None, min_length=1, max_length=64)  # type: ignore[valid-type]
    features: list[str] | None = Field(default=None, max_length=64)
    regions: list[str] | None = Field(default=None, min_length=1, max_length=64)


class LicenceRenew(Strict):
    days: int = Field(ge=1, le=3660)


class LicenceOut(BaseModel):
    site: str
    jti: str
    status: str
    reason: str | None
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
    note: str | None = Field(default=None, max_length=500, pattern=SAFE_TEXT)
