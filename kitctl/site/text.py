"""Rules for free text a person types (site name, contact).

Any Unicode is welcome, but nothing that can change how a line is read:
control characters, line/paragraph separators, bidi overrides and unpaired
surrogates are refused, so a value can never start a new line or hide text in
any file it lands in.
"""

from __future__ import annotations

import unicodedata

# Bidi embeddings/overrides/isolates ("Trojan source") and the BOM.
_INVISIBLE_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp", "Cn"})


def check_text(value: str, what: str, max_len: int, allow_empty: bool = False) -> str:
    """`value` NFC-normalised and stripped, or ValueError with one line saying why not."""
    text = unicodedata.normalize("NFC", value).strip()
    if not text and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    if len(text) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")
    for ch in text:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _INVISIBLE_CONTROLS:
            raise ValueError(f"{what} contains a control or invisible character U+{ord(ch):04X}")
    return text


def check_plain_path_text(value: str, what: str) -> str:
    """A filesystem path as typed: no control characters (they would break Compose and logs)."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _INVISIBLE_CONTROLS:
            raise ValueError(f"{what} contains a control character U+{ord(ch):04X}")
    if len(value) > 1024:
        raise ValueError(f"{what} is longer than 1024 characters")
    return value
