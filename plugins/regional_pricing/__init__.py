"""Regional pricing: discounts by buyer region or time window (a night discount, say).

It layers on the site's price (`unit_price_cents`) through `adjust_checkout`;
the host still clamps the total at HQ's price, so no rule can sell below it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plugins.contract import Manifest, Plugin
from plugins.regional_pricing.rules import PriceRule, best_rule


class RegionalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[PriceRule] = Field(default=[], max_length=50)


class RegionalPricingPlugin(Plugin):
    manifest = Manifest(
        name="regional-pricing",
        version="1.0.0",
        feature="regional-pricing",
        kit_versions=">=0.1,<2",
        settings=RegionalSettings,
        description="Price rules by buyer region or time of day, layered on the site's prices.",
    )

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        found = best_rule(self.settings.rules, ctx)
        if found is None:
            return {}
        rule, off = found
        return {"discount_cents": off, "extras": {"rule": rule.name, "discount_cents": off}}
