"""site.json: what `kitctl render` writes and the storefront reads, as one model.

Render validates the licensee's choices with the checks below and checks the
file it writes against `SiteConfig`; the storefront loads the file through
the same `SiteConfig`. So a colour (or locale, currency, logo name) one side
refuses, the other refuses too, and both start from the same defaults.
Every value is untrusted text for templates (autoescaped) and CSS (colours
must be plain hex).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}\Z")
CURRENCY = re.compile(r"^[A-Z]{3}\Z")
LOGO_NAME = re.compile(r"^logo\.(png|jpg|jpeg|svg|webp|gif)\Z")
TIME_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]{0,30}(?:/[A-Za-z0-9_+-]{1,30}){0,2}\Z")
LOCALES = ("zh-CN", "en")
Locale = Literal["zh-CN", "en"]

DEFAULT_PRIMARY = "#1F6FEB"
DEFAULT_ACCENT = "#F59E0B"
DEFAULT_BACKGROUND = "#F6F7F9"
DEFAULT_TEXT = "#1F2329"
DEFAULT_LOCALE: Locale = "zh-CN"
DEFAULT_CURRENCY = "CNY"
DEFAULT_TIME_ZONE = "Asia/Shanghai"


def check_colour(value: str) -> str:
    """`#RRGGBB`, stored upper case (it goes into CSS as is)."""
    if not COLOUR.match(value):
        raise ValueError(f"colour {value!r} is not #RRGGBB")
    return value.upper()


def check_currency(value: str) -> str:
    if not CURRENCY.match(value):
        raise ValueError(f"currency {value!r} is not a 3-letter ISO 4217 code like CNY")
    return value


def check_logo_name(value: str | None) -> str | None:
    if value is not None and not LOGO_NAME.match(value):
        raise ValueError("logo must be logo.<png|jpg|jpeg|svg|webp|gif>")
    return value


def check_time_zone(value: str) -> str:
    """An IANA zone name the system's zone database knows (times on every page are shown in it)."""
    from zoneinfo import ZoneInfo

    if not TIME_ZONE.match(value):
        raise ValueError(f"time zone {value!r} is not an IANA name like Asia/Shanghai")
    try:
        ZoneInfo(value)
    except (KeyError, ValueError, OSError):
        raise ValueError(f"time zone {value!r} is not in the zone database (e.g. Asia/Shanghai, UTC)") from None
    return value


# The field types both models use, so each value is checked one way.
Colour = Annotated[str, AfterValidator(check_colour)]
Currency = Annotated[str, AfterValidator(check_currency)]
LogoName = Annotated[str | None, AfterValidator(check_logo_name)]
TimeZone = Annotated[str, AfterValidator(check_time_zone)]


class Colours(BaseModel):
    model_config = ConfigDict(extra="ignore")

    primary: Colour = DEFAULT_PRIMARY
    accent: Colour = DEFAULT_ACCENT
    background: Colour = DEFAULT_BACKGROUND
    text: Colour = DEFAULT_TEXT


class SiteConfig(BaseModel):
    """What the storefront knows about the site it serves (defaults: a development shop)."""

    model_config = ConfigDict(extra="ignore")

    site_id: str = "dev"
    name: str = "星辰游戏"
    domain: str = "localhost"
    locale: Locale = DEFAULT_LOCALE
    currency: Currency = DEFAULT_CURRENCY
    colours: Colours = Colours()
    contact: str = ""
    logo: LogoName = None  # file name under /branding/, e.g. logo.png
    time_zone: TimeZone = DEFAULT_TIME_ZONE  # every time a page shows is in this zone


def parse_site_json(data: Any) -> SiteConfig:
    """A parsed site.json as the model (`site` or `id` also name the site); ValidationError if it is wrong."""
    if isinstance(data, dict):
        for alias in ("site", "id"):
            if alias in data and "site_id" not in data:
                data = {**data, "site_id": data[alias]}
    return SiteConfig.model_validate(data)


def load_site_json(path: Path | None) -> SiteConfig:
    """Read and validate site.json; without one, the development defaults."""
    if path is None:
        return SiteConfig()
    return parse_site_json(json.loads(Path(path).read_text(encoding="utf-8")))
