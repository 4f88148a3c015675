"""JSON from peers, decoded without letting its shape crash the reader.

The standard library's decoder recurses once per nesting level: a few
kilobytes of `[[[[…` raise `RecursionError`, which no caller expects from
"parse this". Tokens, HQ answers and key files are decoded here instead:
nesting is counted first (in C-speed passes) and refused past `MAX_DEPTH`,
then orjson decodes (it rejects NaN and Infinity, as the JSON spec does).
Everything wrong comes out as `ValueError` with a one-line message.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import orjson

MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


class JSONRefused(ValueError):
    """Not acceptable JSON: malformed, or nested deeper than the reader allows."""


def depth(data: bytes) -> int:
    """How deep arrays and objects nest in `data` (strings' contents do not count)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(accumulate(_BRACKETS[b] for b in brackets))


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded value; JSONRefused when it is not JSON or nests deeper than `max_depth`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if depth(raw) > max_depth:
        raise JSONRefused(f"JSON nests deeper than {max_depth} levels")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JSONRefused(f"not valid JSON ({str(exc).splitlines()[0]})") from None
