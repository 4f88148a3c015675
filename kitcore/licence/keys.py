"""HQ's Ed25519 signing keys, and the public keys a licensee pins.

HQ keeps its private keys in `<hq_dir>/keys/` (mode 0600) with an index that
names the current key; rotating adds a key and makes it current while older
keys keep verifying until they are retired. Licensees pin the public half as
a JWKS document (RFC 7517) and verify everything offline against it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kitcore import safejson
from kitcore.errors import InvalidInput, KitError

MAX_JWKS_BYTES = 64 * 1024


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: a stable fingerprint of a public key."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw_public_bytes(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(raw_public_bytes(key)),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the first byte (no window where it is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    created: str
    retired: str | None = None


class HQKeyStore:
    """HQ's signing keys on disk: `<hq_dir>/keys/<kid>.pem` plus `index.json`."""

    def __init__(self, hq_dir: Path | str) -> None:
        self.dir = Path(hq_dir) / "keys"
        self.index_path = self.dir / "index.json"
        # (the index file's inode, mtime and size; the current kid; its key) as last read by `signing_key`
        self._signing: tuple[tuple[int, int, int], str, Ed25519PrivateKey] | None = None

    # -- index -------------------------------------------------------------
    def exists(self) -> bool:
        return self.index_path.exists()

    def _read_index(self) -> dict[str, Any]:
        if not self.exists():
            raise KitError(f"no HQ signing key in {self.dir.parent}; run `kitctl hq keys init` first")
        return json.loads(self.index_path.read_text())

    def _write_index(self, index: dict[str, Any]) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
        os.replace(tmp, self.index_path)

    def keys(self) -> list[KeyInfo]:
        return [KeyInfo(**k) for k in self._read_index()["keys"]]

    def current_kid(self) -> str:
        return self._read_index()["current"]

    # -- lifecycle ---------------------------------------------------------
    def init(self) -> KeyInfo:
        """Create the first signing key; refuses to overwrite an existing one."""
        if self.exists():
            raise InvalidInput(f"HQ keys already exist in {self.dir.parent}; use `kitctl hq keys rotate`")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = self._new_key()
        self._write_index({"current": info.kid, "keys": [info.__dict__]})
        return info

    def rotate(self) -> KeyInfo:
        """Add a key and make it current; older keys keep verifying until retired."""
        index = self._read_index()
        info = self._new_key()
        index["keys"].append(info.__dict__)
        index["current"] = info.kid
        self._write_index(index)
        return info

    def retire(self, kid: str) -> None:
        """Stop publishing `kid`: tokens it signed no longer verify once licensees re-pin."""
        index = self._read_index()
        if kid == index["current"]:
            raise InvalidInput("the current signing key cannot be retired; rotate first")
        for k in index["keys"]:
            if k["kid"] == kid:
                k["retired"] = _now_iso()
                self._write_index(index)
                return
        raise InvalidInput(f"no key with kid {kid!r}")

    def _new_key(self) -> KeyInfo:
        private = Ed25519PrivateKey.generate()
        kid = thumbprint(private.public_key())[:16]
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(self.dir / f"{kid}.pem", pem)
        return KeyInfo(kid=kid, created=_now_iso())

    # -- use ---------------------------------------------------------------
    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The current key, read and parsed once per version of the index: HQ signs every command it
        hands out (10,000 at once for a fleet-wide one), and reading the index and parsing the PEM each
        time was most of a signature's cost. A rotation replaces the index file, so it is seen at once."""
        try:
            st = self.index_path.stat()
        except FileNotFoundError:
            self._read_index()  # the KitError that names the fix
            raise
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._signing
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        kid = self.current_kid()
        pem = (self.dir / f"{kid}.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        self._signing = (stamp, kid, key)
        return kid, key

    def public_key(self, kid: str) -> Ed25519PublicKey:
        pem = (self.dir / f"{kid}.pem").read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key.public_key()

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every key not retired, as the JWKS licensees pin."""
        return {
            "keys": [public_jwk(k.kid, self.public_key(k.kid)) for k in self.keys() if not k.retired]
        }

    def pinned(self) -> "PinnedKeys":
        return PinnedKeys.from_jwks(self.jwks())


@dataclass(frozen=True)
class PinnedKeys:
    """Public keys a verifier trusts, by kid."""

    by_kid: dict[str, Ed25519PublicKey]

    @classmethod
    def from_jwks(cls, doc: Any) -> "PinnedKeys":
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list) or not doc["keys"]:
            raise InvalidInput("HQ keys: not a JWKS document (expected {\"keys\": [...]})")
        keys: dict[str, Ed25519PublicKey] = {}
        for jwk in doc["keys"]:
            kid, key = _parse_jwk(jwk)
            keys[kid] = key
        return cls(keys)


def _parse_jwk(jwk: Any) -> tuple[str, Ed25519PublicKey]:
    if not isinstance(jwk, dict):
        raise InvalidInput("HQ keys: a key entry is not an object")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise InvalidInput("HQ keys: only Ed25519 (kty OKP) keys are accepted")
    kid, x = jwk.get("kid"), jwk.get("x")
    if not isinstance(kid, str) or not kid or not isinstance(x, str):
        raise InvalidInput("HQ keys: a key lacks its kid or x")
    try:
        raw = b64url_decode(x)
        if len(raw) != 32:
            raise ValueError
        return kid, Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidInput(f"HQ keys: key {kid!r} is not a valid Ed25519 public key") from None


def load_jwks(source: Path | str | dict[str, Any]) -> PinnedKeys:
    """Pinned HQ keys from a JWKS file path or an already parsed document."""
    if isinstance(source, dict):
        return PinnedKeys.from_jwks(source)
    path = Path(source)
    try:
        if path.stat().st_size > MAX_JWKS_BYTES:
            raise InvalidInput(f"HQ keys file {path} is too large")
        doc = safejson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidInput(f"HQ keys file {path} does not exist") from None
    except safejson.JSONRefused:
        raise InvalidInput(f"HQ keys file {path} is not JSON") from None
    return PinnedKeys.from_jwks(doc)


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
