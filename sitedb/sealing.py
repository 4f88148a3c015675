"""Card keys (and buyer data, see `sitedb.buyer`) at rest: sealed with the site key (AES-256-GCM).

`aad` names what a sealed value is (and may bind it to its row): a value sealed for one
purpose does not open as another.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_AAD = b"kitctl-delivery-v1"


def load_site_key(path: str | Path) -> bytes:
    key = base64.b64decode(Path(path).read_text().strip())
    if len(key) != 32:
        raise ValueError("site key must be 32 bytes (base64)")
    return key


def seal(key: bytes, data: Any, aad: bytes = _AAD) -> str:
    nonce = os.urandom(12)
    box = AESGCM(key).encrypt(nonce, json.dumps(data, separators=(",", ":")).encode(), aad)
    return base64.b64encode(nonce + box).decode("ascii")


def open_sealed(key: bytes, sealed: str, aad: bytes = _AAD) -> Any:
    raw = base64.b64decode(sealed)
    return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], aad))


def sealer(key: bytes) -> Callable[[Any], str]:
    """`seal` with the key's cipher built once (the agent seals every delivery of a batch)."""
    box = AESGCM(key)

    def seal_with_key(data: Any) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + box.encrypt(nonce, json.dumps(data, separators=(",", ":")).encode(),
                                                    _AAD)).decode("ascii")

    return seal_with_key
