"""Referral: buyers name who sent them; a named referrer takes a fixed amount off.

An example of every kind of contribution a plugin can make: settings with a
secret, a checkout field, a discount (the host clamps it at HQ's price), an
event hook, and a stack fragment (an extra service with a volume, plus a storefront variable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from plugins.contract import Manifest, Plugin


class ReferralSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    discount_cents: int = Field(default=100, ge=0, le=10_000)
    ledger_file: str | None = None  # where referred orders are appended (JSON lines)
    partner_api_token: SecretStr | None = None  # a secret: stored 0600, shown as ***


class ReferralPlugin(Plugin):
    manifest = Manifest(
        name="referral",
        version="0.2.0",
        feature="custom-plugins",
        kit_versions=">=0.1,<2",
        settings=ReferralSettings,
        description="Example third-party plugin: 'referred by' field and a small discount.",
    )

    def checkout_fields(self) -> list[dict[str, Any]]:
        return [{"name": "referrer", "label": "Referred by", "required": False, "max_length": 40}]

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        referrer = ctx["fields"].get("referrer", "")
        if not referrer:
            return {}
        if not referrer.replace("-", "").isalnum():
            return {"errors": {"referrer": "use letters, digits and '-' only"}}
        return {"discount_cents": self.settings.discount_cents, "extras": {"referrer": referrer}}

    def order_created(self, payload: dict[str, Any]) -> None:
        if self.settings.ledger_file and payload.get("extras", {}).get("referral"):
            with Path(self.settings.ledger_file).open("a", encoding="utf-8") as ledger:
                ledger.write(json.dumps({"order_id": payload.get("order_id"), **payload["extras"]["referral"]}) + "\n")

    def stack_fragment(self) -> dict[str, Any]:
        """A small service of its own (serving its volume on the stack's network) and a storefront variable."""
        probe = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/', timeout=3)"
        return {
            "services": {"referral-sync": {
                "image": "kitctl/base:bookworm",  # the kit's namespace; render adds the licence's registry
                "command": ["python3", "-m", "http.server", "8080", "--directory", "/srv/referral"],
                "volumes": ["referral-data:/srv/referral"],
                "healthcheck": {"test": ["CMD", "python3", "-c", probe], "interval": "2s", "timeout": "5s",
                                "retries": 15, "start_period": "2s"},
                "depends_on": ["db"],
            }},
            "volumes": {"referral-data": {}},
            "env": {"storefront": {"PLUGIN_REFERRAL_ENABLED": "1"}},
        }
