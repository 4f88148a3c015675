"""Coupons: codes with percent or fixed discounts, a validity window, usage limits, category scope.

The buyer types a code in the `coupon` checkout field; `adjust_checkout` checks
it and counts the use with one conditional UPDATE in the checkout's own
transaction, so a coupon is used exactly when an order is written.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from plugins.contract import AdminAction, Manifest, Plugin


class CouponSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field_label: str = Field(default="Coupon code", min_length=1, max_length=80)


class CouponsPlugin(Plugin):
    manifest = Manifest(
        name="coupons",
        version="1.0.0",
        feature="coupons",
        kit_versions=">=0.1,<2",
        settings=CouponSettings,
        description="Discount codes at checkout (percent or fixed, window, limits, categories).",
        checkout_timeout_seconds=2.0,
    )

    _prepared: ClassVar[set[str]] = set()  # databases known to have the table

    def checkout_fields(self) -> list[dict[str, Any]]:
        return [{"name": "coupon", "label": self.settings.field_label, "required": False, "max_length": 32}]

    def prepare_database(self, engine: Any) -> None:
        from plugins.coupons.tables import metadata

        metadata.create_all(engine, checkfirst=True)

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        from plugins.coupons.admin import normalise_code
        from plugins.coupons.rules import CouponRefused, check_applies, discount_for

        code = normalise_code(ctx["fields"].get("coupon", ""))
        if not code:
            return {}
        coupon = self._find(session, code) if self._table_exists(session) else None
        gross = ctx["unit_price_cents"] * ctx["quantity"]
        try:
            if coupon is None:
                raise CouponRefused(f"coupon {code} is not valid")
            check_applies(coupon, ctx["category"], gross, ctx.get("now") or datetime.now(timezone.utc))
            self._count_use(session, coupon)
        except CouponRefused as refused:
            return {"errors": {"coupon": str(refused)}}
        off = discount_for(coupon, gross)
        return {"discount_cents": off, "extras": {"code": code, "discount_cents": off}}

    def admin_actions(self) -> dict[str, AdminAction]:
        from plugins.coupons import admin

        return {
            "add": AdminAction("Create a coupon", admin.AddCoupon, admin.add),
            "list": AdminAction("List coupons and their use", admin.NoArguments, admin.list_coupons),
            "disable": AdminAction("Stop a coupon from applying", admin.CodeOnly, admin.set_enabled(False)),
            "enable": AdminAction("Let a disabled coupon apply again", admin.CodeOnly, admin.set_enabled(True)),
        }

    # -- internals -----------------------------------------------------------------
    def _table_exists(self, session: Any) -> bool:
        """No coupon was ever added when the table is missing; checkouts never run DDL."""
        connection = session.connection()
        key = repr(connection.engine.url)
        if key not in self._prepared:
            from sqlalchemy import inspect

            from plugins.coupons.tables import coupons

            if not inspect(connection).has_table(coupons.name):
                return False
            type(self)._prepared.add(key)
        return True

    @staticmethod
    def _find(session: Any, code: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        from plugins.coupons.tables import coupons

        row = session.execute(select(coupons).where(coupons.c.code == code)).first()
        return dict(row._mapping) if row else None

    @staticmethod
    def _count_use(session: Any, coupon: dict[str, Any]) -> None:
        """One conditional UPDATE: the row lock makes concurrent checkouts respect max_uses."""
        from sqlalchemy import update

        from plugins.coupons.rules import CouponRefused
        from plugins.coupons.tables import coupons

        c = coupons.c
        statement = (
            update(coupons)
            .where(c.id == coupon["id"], c.enabled.is_(True))
            .where((c.max_uses.is_(None)) | (c.used_count < c.max_uses))
            .values(used_count=c.used_count + 1)
        )
        if session.execute(statement).rowcount != 1:
            raise CouponRefused(f"coupon {coupon['code']} has been used up")
