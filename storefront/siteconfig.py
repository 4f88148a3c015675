"""The site's branding and identity from `site.json` (written by `kitctl render`).

Every value here is untrusted text for templates (autoescaped) and CSS
(colours must be plain hex), so it is validated once at start.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
LOGO_NAME = re.compile(r"^logo\.(png|jpg|jpeg|svg|webp|gif)$")
LOCALES = ("zh-CN", "en")


class Colours(BaseModel):
    model_config = ConfigDict(extra="ignore")

    primary: str = "#c8102e"
    accent: str = "#f5a623"
    background: str = "#f6f7f9"
    text: str = "#1f2329"

    @field_validator("*")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not HEX_COLOUR.match(value):
            raise ValueError(f"colour {value!r} must be #rgb or #rrggbb")
        return value


class SiteConfig(BaseModel):
    """What the storefront needs to know about the site it serves."""

    model_config = ConfigDict(extra="ignore")

    site_id: str = Field(default="dev", alias="site_id")
    name: str = "星辰游戏"
    domain: str = "localhost"
    locale: str = "zh-CN"
    currency: str = "CNY"
    colours: Colours = Colours()
    contact: str = ""
    logo: str | None = None  # file name under /branding/, e.g. logo.png

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"locale must be one of {', '.join(LOCALES)}")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError("currency must be a 3-letter ISO code such as CNY")
        return value

    @field_validator("logo")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value is not None and not LOGO_NAME.match(value):
            raise ValueError("logo must be logo.<png|jpg|jpeg|svg|webp|gif>")
        return value


def load_site_config(path: Path | None) -> SiteConfig:
    """Read and validate site.json; without one, development defaults."""
    if path is None:
        return SiteConfig()
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "site" in data and "site_id" not in data:  # accept {"site": ...} as the id too
        data["site_id"] = data["site"]
    if "id" in data and "site_id" not in data:
        data["site_id"] = data["id"]
    return SiteConfig.model_validate(data)
