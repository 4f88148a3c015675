"""Field types of HQ's request bodies: each carries its constraint into /openapi.json and enforces it.

One rule for every body, the heartbeat's fast path included: a value is taken
only if the schema admits it. Integers are JSON integers (`2.0` is the same
JSON Schema integer and is taken as 2; `true`, `"2"` and `2.5` are refused),
text has no control characters, and identifiers follow their patterns.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

# C0 and C1 control characters and DEL: never part of a name, a contact or a note
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
SITE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
# a host name as the site's proxy serves it (IDNs in their xn-- form), lower case
DOMAIN_PATTERN = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ORDER_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
REGION_PATTERN = r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,8})?$"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_H = "[0-9A-Fa-f]{1,4}"
_IPV6 = (f"({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}|"
         f"({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}|"
         f"{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:)")
IP_NETWORK_PATTERN = (rf"^(({_OCTET}\.){{3}}{_OCTET}(/(3[0-2]|[12]?[0-9]))?"
                      rf"|({_IPV6})(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$")
# RFC 3339 in the years 2000-2199, spelled out so a generator can follow it; `format: date-time` rules out Feb 30
DATE_TIME_PATTERN = (r"^2[01][0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                     r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
MAX_CENTS = 10**15  # the largest amount an order can carry: 10**11 a unit × 10,000 units


def _whole(value: Any) -> Any:
    """`2.0` is the JSON Schema integer 2; any other non-integer goes on to be refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(minimum: int, maximum: int) -> Any:
    """A JSON integer in [minimum, maximum] (the bounds come first, so the schema says minimum/maximum)."""
    return Annotated[int, Field(ge=minimum, le=maximum), BeforeValidator(_whole), Strict()]


def text(max_length: int, min_length: int = 0) -> Any:
    """A str of printable characters, at most `max_length` long."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length, pattern=TEXT_PATTERN)]


SiteId = Annotated[str, Field(pattern=SITE_ID_PATTERN)]
Domain = Annotated[str, Field(max_length=253, pattern=DOMAIN_PATTERN)]
Licensee = Annotated[str, Field(min_length=1, max_length=100, pattern=TEXT_PATTERN)]
Sku = Annotated[str, Field(pattern=SKU_PATTERN)]
Region = Annotated[str, Field(max_length=11, pattern=REGION_PATTERN)]
Account = Annotated[str, Field(max_length=128, pattern=TEXT_PATTERN)]
Contact = Annotated[str, Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)]


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network") from None
    return value


IpNetwork = Annotated[str, Field(max_length=43, pattern=IP_NETWORK_PATTERN), AfterValidator(_network)]


def _timestamp_text(value: Any) -> Any:
    """Only RFC 3339 text in 2000-2199: no unix numbers, no bare dates (lax parsing would take them)."""
    if not isinstance(value, str) or not re.match(DATE_TIME_PATTERN, value):
        raise ValueError("must be an RFC 3339 date-time between the years 2000 and 2199")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp_text), WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN})]


def _regex(value: str) -> str:
    """A Python regular expression; JSON Schema's `format: regex` is ECMA 262, another dialect, so this is a rule."""
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError("invalid_account_pattern", "is not a valid regular expression: {why}",
                                  {"why": str(exc)}) from None
    return value


AccountPattern = Annotated[str, Field(max_length=200, pattern=TEXT_PATTERN,
                                      description="a Python regular expression the buyer's account must match"),
                           AfterValidator(_regex)]


def unique(values: list[Any]) -> list[Any]:
    """Lists that are sets (categories, features, block entries) name each member once."""
    if len(set(values)) != len(values):
        raise ValueError("lists the same value twice")
    return values
