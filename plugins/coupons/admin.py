"""Operator actions on coupons: `kitctl plugins admin coupons add|list|disable|enable …`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plugins.coupons.rules import as_utc


def normalise_code(code: str) -> str:
    return code.strip().upper()


class AddCoupon(BaseModel):
    """Arguments of `add`: code and exactly one of percent / fixed_cents."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[A-Za-z0-9_-]{3,32}$")
    percent: int | None = Field(default=None, ge=1, le=100)
    fixed_cents: int | None = Field(default=None, ge=1)
    categories: list[str] = []
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    max_uses: int | None = Field(default=None, ge=1)
    min_total_cents: int = Field(default=0, ge=0)

    @field_validator("categories", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [c.strip() for c in value.split(",") if c.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> "AddCoupon":
        if (self.percent is None) == (self.fixed_cents is None):
            raise ValueError("give exactly one of percent or fixed_cents")
        if self.valid_from and self.valid_until and as_utc(self.valid_until) <= as_utc(self.valid_from):
            raise ValueError("valid_until must be after valid_from")
        return self


class CodeOnly(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{3,32}$")


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


def add(session: Any, args: AddCoupon) -> list[dict[str, Any]]:
    from sqlalchemy import insert, select

    from kitcore.errors import InvalidInput
    from plugins.coupons.tables import coupons

    code = normalise_code(args.code)
    if session.execute(select(coupons.c.id).where(coupons.c.code == code)).first():
        raise InvalidInput(f"coupon {code} already exists")
    kind: Literal["percent", "fixed"] = "percent" if args.percent is not None else "fixed"
    session.execute(
        insert(coupons).values(
            code=code, kind=kind, value=args.percent if kind == "percent" else args.fixed_cents,
            categories=args.categories, valid_from=as_utc(args.valid_from), valid_until=as_utc(args.valid_until),
            max_uses=args.max_uses, used_count=0, min_total_cents=args.min_total_cents, enabled=True,
            created_at=datetime.now(timezone.utc),
        )
    )
    return list_coupons(session, NoArguments(), code=code)


def list_coupons(session: Any, _args: NoArguments, code: str | None = None) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from plugins.coupons.tables import coupons

    query = select(coupons).order_by(coupons.c.code)
    if code is not None:
        query = query.where(coupons.c.code == code)
    return [_row(r._mapping) for r in session.execute(query)]


def set_enabled(enabled: bool) -> Callable[[Any, CodeOnly], list[dict[str, Any]]]:
    """The admin action that switches a coupon on or off."""

    def run(session: Any, args: CodeOnly) -> list[dict[str, Any]]:
        from sqlalchemy import update

        from kitcore.errors import InvalidInput
        from plugins.coupons.tables import coupons

        code = normalise_code(args.code)
        done = session.execute(update(coupons).where(coupons.c.code == code).values(enabled=enabled))
        if done.rowcount == 0:
            raise InvalidInput(f"no coupon {code}")
        return list_coupons(session, NoArguments(), code=code)

    return run


def _row(row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return as_utc(value).isoformat() if value else None

    off = f"{row['value']}%" if row["kind"] == "percent" else f"{row['value'] / 100:.2f}"
    return {
        "code": row["code"], "off": off, "categories": ",".join(row["categories"]) or "all",
        "valid_from": iso(row["valid_from"]), "valid_until": iso(row["valid_until"]),
        "used": row["used_count"], "max_uses": row["max_uses"], "min_total_cents": row["min_total_cents"],
        "enabled": row["enabled"],
    }
