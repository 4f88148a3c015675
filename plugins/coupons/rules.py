"""Whether a coupon applies to a checkout, and how much it takes off: pure functions."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping


class CouponRefused(Exception):
    """The buyer's coupon does not apply; the message is shown next to the field."""


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def check_applies(coupon: Mapping[str, Any], category: str, gross_cents: int, now: datetime) -> None:
    """Raise CouponRefused with a buyer-facing reason when `coupon` cannot be used now."""
    code = coupon["code"]
    now = as_utc(now) or datetime.now(timezone.utc)
    if not coupon["enabled"]:
        raise CouponRefused(f"coupon {code} is not valid")
    start, end = as_utc(coupon["valid_from"]), as_utc(coupon["valid_until"])
    if start is not None and now < start:
        raise CouponRefused(f"coupon {code} is not valid yet")
    if end is not None and now >= end:
        raise CouponRefused(f"coupon {code} has expired")
    if coupon["categories"] and category not in coupon["categories"]:
        raise CouponRefused(f"coupon {code} does not apply to this category")
    if coupon["max_uses"] is not None and coupon["used_count"] >= coupon["max_uses"]:
        raise CouponRefused(f"coupon {code} has been used up")
    if gross_cents < coupon["min_total_cents"]:
        raise CouponRefused(f"coupon {code} needs an order of at least {coupon['min_total_cents'] / 100:.2f}")


def discount_for(coupon: Mapping[str, Any], gross_cents: int) -> int:
    """Cents off an order worth `gross_cents` (never more than the order; the host clamps further)."""
    if coupon["kind"] == "percent":
        off = gross_cents * int(coupon["value"]) // 100
    else:
        off = int(coupon["value"])
    return max(0, min(off, gross_cents))
