"""An e-mail address as the kit accepts one from a buyer (shop form, HQ API): one pattern for both ends."""

from __future__ import annotations

import re

MAX_LENGTH = 254
# pydantic's too (its engine has no `\Z`, its `$` is the very end): checked here with fullmatch.
# No `\s` in it: Python's, pydantic's (Rust) and JSON Schema's (ECMA 262) disagree on U+0085 and U+FEFF, so the
# spaces and controls are listed: C0, space, DEL, C1, no-break space and the other Unicode spaces, the BOM.
_NOT_LOCAL = r"@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
PATTERN = rf"^[^{_NOT_LOCAL}]{{1,64}}@[A-Za-z0-9](?:[A-Za-z0-9-]{{0,62}}\.)+[A-Za-z]{{2,63}}$"
_ADDRESS = re.compile(PATTERN)


def valid(address: str) -> bool:
    return isinstance(address, str) and len(address) <= MAX_LENGTH and _ADDRESS.fullmatch(address) is not None
