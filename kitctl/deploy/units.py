"""Compose's duration and size notations, converted for the Engine API."""

from __future__ import annotations

import re

from kitcore.errors import InvalidInput

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_DURATION_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)b?\Z", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def duration_seconds(value: object, where: str) -> float:
    """'1m30s', '500ms', '5s' or a number of seconds → seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise InvalidInput(f"{where}: {value!r} is not a duration like 5s, 1m30s or 500ms")
    return total


def size_bytes(value: object, where: str) -> int:
    """'512m', '1g', '256M', '1024' → bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise InvalidInput(f"{where}: {value!r} is not a size like 512m or 1g")
    return int(float(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()])
