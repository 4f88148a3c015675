"""Compact JWS signed with Ed25519: the one signing format HQ uses.

Licences and HQ commands are both JWS; the `typ` header keeps them apart so
that a command can never be replayed as a licence or the other way round.
PyJWT signs; verification checks the Ed25519 signature with `cryptography`
directly, so that no part of a token is parsed by a JSON reader that could
be made to recurse (header and payload go through `kitcore.safejson`). The
policy around it: only EdDSA, only pinned kids, canonical base64url, bounded
size and nesting.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.exceptions import InvalidSignature

from kitcore import safejson
from kitcore.errors import LicenceError
from kitcore.licence.keys import PinnedKeys, b64url, b64url_decode

if TYPE_CHECKING:
    from kitcore.licence.keys import HQKeyStore

MAX_TOKEN_BYTES = 8 * 1024
MAX_DEPTH = 8  # claims nest two levels (registry grant, command payload); 8 leaves room, never recursion
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+\Z")


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
    signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
    try:
        keys.by_kid[kid].verify(b64url_decode(segments[2]), signing_input)
    except InvalidSignature:
        raise LicenceError(f"{what} rejected: signature does not verify (tampered or wrong key)") from None
    payload = _decode_json(segments[1], what, "payload")
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
        value = safejson.loads(b64url_decode(segment), max_depth=MAX_DEPTH)
    except safejson.JSONRefused as exc:
        raise LicenceError(f"{what} rejected: {part} is not acceptable JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LicenceError(f"{what} rejected: {part} is not a JSON object")
    return value


def header_kid(token: str) -> str:
    """The kid of an already verified token."""
    return str(_decode_json(token.strip().split(".")[0], "token", "header")["kid"])
