"""Versioned names for the storefront's static files, agreed on by the storefront and the proxy image.

A page links `/static/app.<hash>.css`; the proxy image carries the same file
under the same name (both are built from one checkout), so the proxy serves it
itself, marked immutable: a changed file is a new name, never a stale cache.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

HASH_CHARS = 12
HASHED = re.compile(rf"^(?P<stem>[\w-]+)\.(?P<hash>[0-9a-f]{{{HASH_CHARS}}})\.(?P<ext>[a-z0-9]+)$")
IMMUTABLE = "public, max-age=31536000, immutable"


def hashed_name(name: str, content: bytes) -> str:
    """`app.css` → `app.<first 12 hex of sha256>.css`."""
    stem, dot, ext = name.rpartition(".")
    digest = hashlib.sha256(content).hexdigest()[:HASH_CHARS]
    return f"{stem}.{digest}.{ext}" if dot else f"{name}.{digest}"


def versioned(directory: Path) -> dict[str, str]:
    """Each file of `directory` (not recursive) → its hashed name."""
    return {p.name: hashed_name(p.name, p.read_bytes()) for p in sorted(directory.iterdir()) if p.is_file()}
