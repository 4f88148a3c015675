"""Price rules by buyer region and time of day, layered on the site's own price."""

from __future__ import annotations

from datetime import datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class PriceRule(BaseModel):
    """One rule; every condition given must hold. The window may wrap midnight (22:00-06:00)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    regions: list[str] = []  # buyer region codes, e.g. "CN-GD"; [] = any
    categories: list[str] = []  # [] = any
    start: time | None = None
    end: time | None = None
    timezone: str = "Asia/Shanghai"
    percent_off: int = Field(default=0, ge=0, le=90)
    fixed_off_cents: int = Field(default=0, ge=0)  # per unit

    @field_validator("regions")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [r.strip().upper() for r in value if r.strip()]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> "PriceRule":
        if (self.start is None) != (self.end is None):
            raise ValueError(f"rule {self.name}: give both start and end, or neither")
        if self.start is not None and self.start == self.end:
            raise ValueError(f"rule {self.name}: start and end are equal")
        if not (self.percent_off or self.fixed_off_cents):
            raise ValueError(f"rule {self.name}: give percent_off or fixed_off_cents")
        return self

    def matches(self, region: str | None, category: str, now: datetime) -> bool:
        if self.regions and (region or "").strip().upper() not in self.regions:
            return False
        if self.categories and category not in self.categories:
            return False
        return self.start is None or _in_window(self.start, self.end, _local(now, self.timezone))

    def discount(self, unit_price_cents: int, quantity: int) -> int:
        gross = unit_price_cents * quantity
        return min(gross, gross * self.percent_off // 100 + self.fixed_off_cents * quantity)


def _local(now: datetime, zone: str) -> time:
    aware = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    return aware.astimezone(ZoneInfo(zone)).time()


def _in_window(start: time, end: time | None, at: time) -> bool:
    assert end is not None
    return start <= at < end if start < end else at >= start or at < end


def best_rule(rules: list[PriceRule], ctx: dict[str, Any]) -> tuple[PriceRule, int] | None:
    """The matching rule that takes off the most (rules do not stack), with its discount."""
    now = ctx.get("now") or datetime.now(timezone.utc)
    best: tuple[PriceRule, int] | None = None
    for rule in rules:
        if rule.matches(ctx.get("buyer_region"), ctx["category"], now):
            off = rule.discount(ctx["unit_price_cents"], ctx["quantity"])
            if best is None or off > best[1]:
                best = (rule, off)
    return best
