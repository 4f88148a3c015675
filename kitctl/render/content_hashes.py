"""Hashes the renderer and the deploy engine must agree on, defined once."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable


def canonical_json(value: Any) -> bytes:
    """A byte-stable JSON form: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compose_hash(service: dict[str, Any]) -> str:
    """The config hash of one service as it stands in compose.yaml (parsed, not interpolated).

    The deploy engine stores it in the `com.docker.compose.config-hash` label and
    recreates a container when it differs. Mounted files (Caddyfile, site.json,
    branding) are covered too: their hash is the service's `com.kitctl.inputs-hash` label.
    """
    return sha256_hex(canonical_json(service))


def files_hash(files: dict[str, bytes], names: Iterable[str]) -> str:
    """One hash over the named files' paths and contents (for a service's inputs-hash label)."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode("utf-8") + b"\0" + sha256_hex(files[name]).encode("ascii") + b"\n")
    return digest.hexdigest()
