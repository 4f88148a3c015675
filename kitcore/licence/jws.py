"""Compact JWS signed with Ed25519: the one signing format HQ uses.

Licences and HQ commands are both JWS; the `typ` header keeps them apart so
that a command can never be replayed as a licence or the other way round.
PyJWT does the cryptography; this module adds the policy around it: only
EdDSA, only pinned kids, canonical base64url, bounded size.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import jwt

from kitcore.errors import LicenceError
from kitcore.licence.keys import PinnedKeys, b64url, b64url_decode

if TYPE_CHECKING:
    from kitcore.licence.keys import HQKeyStore

MAX_TOKEN_BYTES = 8 * 1024
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


def sign(payload: dict[str, Any], store: "HQKeyStore", typ: str) -> str:
    """Sign `payload` with HQ's current key."""
    kid, key = store.signing_key()
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid, "typ": typ})


def verify(token: Any, keys: PinnedKeys, typ: str, what: str = "token") -> dict[str, Any]:
    """The verified payload of `token`, or LicenceError with one line saying why not.

    Only the signature and header policy are checked here; claims and times
    are the caller's (they differ between licences and commands).
    """
    segments = _split(token, what)
    header = _decode_json(segments[0], what, "header")
    if header.get("alg") != "EdDSA":
        raise LicenceError(f"{what} rejected: algorithm {header.get('alg')!r} is not allowed (only EdDSA)")
    if header.get("typ") != typ:
        raise LicenceError(f"{what} rejected: type {header.get('typ')!r} is not {typ!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys.by_kid:
        raise LicenceError(f"{what} rejected: signed by unknown key {kid!r} (not among the pinned HQ keys)")
    try:
        payload = jwt.decode(
            ".".join(segments),  # the checked, stripped token: a pasted token's trailing newline is not an error
            keys.by_kid[kid],
            algorithms=["EdDSA"],
            options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False, "verify_aud": False, "verify_iss": False,
                     "verify_sub": False, "verify_jti": False},
        )
    except jwt.InvalidSignatureError:
        raise LicenceError(f"{what} rejected: signature does not verify (tampered or wrong key)") from None
    except jwt.PyJWTError as exc:
        raise LicenceError(f"{what} rejected: {_first_line(exc)}") from None
    if not isinstance(payload, dict):
        raise LicenceError(f"{what} rejected: payload is not a JSON object")
    return payload


def _split(token: Any, what: str) -> list[str]:
    if not isinstance(token, str):
        raise LicenceError(f"{what} rejected: not a string")
    token = token.strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise LicenceError(f"{what} rejected: {len(token)} bytes is larger than the {MAX_TOKEN_BYTES}-byte limit")
    segments = token.split(".")
    if len(segments) != 3 or not all(_SEGMENT.match(s) for s in segments):
        raise LicenceError(f"{what} rejected: not a compact JWS (three base64url parts)")
    for seg in segments:
        # Base64url has spare bits in its last character: insist on the one
        # canonical spelling so that no edited byte can still verify.
        try:
            canonical = b64url(b64url_decode(seg)) == seg
        except ValueError:
            canonical = False
        if not canonical:
            raise LicenceError(f"{what} rejected: malformed base64url")
    return segments


def _decode_json(segment: str, what: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(segment))
    except (ValueError, UnicodeDecodeError):
        raise LicenceError(f"{what} rejected: {part} is not valid JSON") from None
    if not isinstance(value, dict):
        raise LicenceError(f"{what} rejected: {part} is not a JSON object")
    return value


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def header_kid(token: str) -> str:
    """The kid of an already verified token."""
    return str(_decode_json(token.strip().split(".")[0], "token", "header")["kid"])
