"""Encryption at rest for card-key secrets and registry passwords (AES-256-GCM).

The key is 32 random bytes in `<hq_dir>/vault.key` (mode 0600), created on
first use. Each value gets a fresh 96-bit nonce; the stored form is base64 of
nonce + ciphertext + tag, so a changed byte fails to decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kitcore.licence.keys import write_private

KEY_BYTES = 32
NONCE_BYTES = 12


class Vault:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("vault key must be 32 bytes")
        self._aead = AESGCM(key)
        self._index_key = hmac.new(key, b"kitctl-hq-index-v1", hashlib.sha256).digest()

    @classmethod
    def open(cls, hq_dir: Path) -> "Vault":
        """Load the vault key from the HQ directory, creating it once."""
        path = Path(hq_dir) / "vault.key"
        if not path.exists():
            write_private(path, base64.b64encode(os.urandom(KEY_BYTES)))
        return cls(base64.b64decode(path.read_bytes().strip()))

    def encrypt(self, plaintext: str, context: str = "") -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def index(self, value: str, purpose: str) -> str:
        """A keyed (salted) hash of a normalised value: equal values match, the value is not recoverable."""
        normal = value.strip().casefold().encode("utf-8")
        return hmac.new(self._index_key, purpose.encode("ascii") + b"|" + normal, hashlib.sha256).hexdigest()

    def decrypt(self, token: str, context: str = "") -> str:
        raw = base64.b64decode(token)
        return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode("utf-8")).decode("utf-8")
