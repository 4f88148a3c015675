"""An e-mail address as the kit accepts one from a buyer (shop form, HQ API): one pattern for both ends."""

from __future__ import annotations

import re

MAX_LENGTH = 254
# pydantic's too (its engine has no `\Z`, its `$` is the very end): checked here with fullmatch
PATTERN = r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}$"
_ADDRESS = re.compile(PATTERN)


def valid(address: str) -> bool:
    return isinstance(address, str) and len(address) <= MAX_LENGTH and _ADDRESS.fullmatch(address) is not None
