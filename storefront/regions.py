"""The buyer's region at checkout: from the client address, with an offline country database; else the buyer's word.

The address is the one the kit's proxy forwarded (believed only from the proxy,
`storefront.forwarded`), looked up in `iptocc`: RIR allocation data embedded in
the wheel, so no network and no file to fetch. A private, loopback or unknown
address has no region; then the buyer confirms theirs on the form. A detected
region is never overridden by the form (a buyer cannot talk their way in).
Orders from outside the licence's regions are refused before payment.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

REGION = re.compile(r"^[A-Z]{2}(?:-[A-Z0-9]{1,8})?\Z")  # ISO 3166-1 alpha-2, optionally a subdivision (CN-GD)
OTHER = "ZZ"  # the form's "elsewhere" (a user-assigned ISO code: no country has it)


def detect(address: str | None) -> str | None:
    """The country an address is allocated to (ISO 3166-1 alpha-2), or None when unknown or not public."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if not parsed.is_global:
        return None
    from iptocc import country_code

    found = country_code(str(parsed))
    return found.upper() if isinstance(found, str) and REGION.match(found.upper()) else None


def allowed(region: str, licensed: list[str] | tuple[str, ...]) -> bool:
    """HQ's own test: a region is in the licence when it or its country is listed; no list means no limit."""
    if not licensed:
        return True
    country = region.split("-")[0].upper()
    return any(entry.upper() in (region.upper(), country) for entry in licensed)


@dataclass(frozen=True)
class BuyerRegion:
    """The region an order carries, and whether the buyer had to confirm it (no region from the address)."""

    region: str | None
    confirmed_by_buyer: bool


class RegionNeeded(Exception):
    """No region from the address and none (or a malformed one) confirmed on the form."""


def buyer_region(address: str | None, confirmed: str, licensed: list[str]) -> BuyerRegion:
    """The detected region; else the buyer's confirmation, needed only when the licence limits regions."""
    detected = detect(address)
    if detected is not None:
        return BuyerRegion(detected, False)
    wanted = confirmed.strip().upper()
    if wanted and REGION.match(wanted):
        return BuyerRegion(wanted, True)
    if licensed:
        raise RegionNeeded()
    return BuyerRegion(None, False)
