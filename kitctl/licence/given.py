"""What a person hands the CLI about licences: a token (TOKEN, @FILE or `-`) and the pinned HQ keys."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kitcore.errors import InvalidInput
from kitcore.licence.jws import MAX_TOKEN_BYTES

if TYPE_CHECKING:
    from kitcore.licence.keys import PinnedKeys


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


def require_hq_keys(path: Path | None) -> "PinnedKeys":
    """The pinned keys, or a one-line error saying how to pin them."""
    from kitcore.licence.keys import load_jwks

    if path is None:
        raise InvalidInput("no pinned HQ keys: pass --hq-keys FILE or set KITCTL_HQ_KEYS")
    return load_jwks(path)
