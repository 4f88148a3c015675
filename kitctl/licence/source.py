"""Reading a licence token from what a person typed: TOKEN, @FILE or `-`."""

from __future__ import annotations

import sys
from pathlib import Path

from kitctl.errors import InvalidInput
from kitctl.licence.jws import MAX_TOKEN_BYTES


def read_token_arg(value: str) -> str:
    """The token named by `value`: itself, the contents of `@FILE`, or stdin for `-`."""
    if value == "-":
        text = sys.stdin.read(MAX_TOKEN_BYTES + 1)
    elif value.startswith("@"):
        path = Path(value[1:])
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise InvalidInput(f"cannot read licence file {path}: {exc.strerror}") from None
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidInput(f"licence file {path} is not a token (non-ASCII bytes)") from None
    else:
        text = value
    text = text.strip()
    if not text:
        raise InvalidInput("licence token is empty")
    if len(text) > MAX_TOKEN_BYTES:
        raise InvalidInput(f"licence token is larger than the {MAX_TOKEN_BYTES}-byte limit")
    return text
