"""The JWS policy in one-line refusals, and what it leaves to the caller (claims and times).

jws.verify checks the signature and the header policy only: a payload's
times and claim types are the licence's or the command's rules (their own
clock skew and grace), so a token that expired a day ago, is valid from a
minute from now, or carries a numeric `sub` or an `aud` still verifies here.
"""

from __future__ import annotations

import time

import jwt
import pytest

from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import b64url
from kitcore.licence.token import verify_licence

TYP = "kitctl-test+jwt"


def test_times_and_claim_types_are_left_to_the_caller(store, pinned):
    now = int(time.time())
    claims = {"iat": now + 60, "nbf": now + 60, "exp": now - 86_400, "sub": 5, "jti": 7, "aud": "someone"}
    assert jws.verify(jws.sign(claims, store, TYP), pinned, TYP) == claims


def test_a_licence_in_grace_and_one_from_a_minute_ahead_verify_on_the_real_clock(issue, pinned):
    now = int(time.time())
    in_grace = verify_licence(issue(days=1, now=now - 2 * 86_400), pinned)  # expired yesterday
    assert in_grace.status == "grace"
    assert verify_licence(issue(days=1, now=now + 60), pinned).status == "valid"  # its clock runs a minute ahead


def _refusal(token, pinned, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(LicenceError) as refused:
        jws.verify(token, pinned, TYP, **kw)
    return str(refused.value)


def _raw(store, payload: bytes, **headers) -> str:  # type: ignore[no-untyped-def]
    kid, key = store.signing_key()
    return jwt.api_jws.encode(payload, key, algorithm="EdDSA", headers={"kid": kid, "typ": TYP, **headers})


def test_refusals_name_what_was_checked(store, pinned):
    good = jws.sign({"a": 1}, store, TYP)
    head, body, sig = good.split(".")
    assert _refusal(12, pinned) == "token rejected: not a string"
    assert _refusal("a.b", pinned, what="command") == "command rejected: not a compact JWS (three base64url parts)"
    assert _refusal("a.b.c.d", pinned) == "token rejected: not a compact JWS (three base64url parts)"
    assert _refusal(f"{head}.{body}x.{sig}", pinned) == "token rejected: malformed base64url"  # 4k+1 characters
    assert _refusal(f"{head[:-1]}.{body}.{sig}", pinned, what="licence") == "licence rejected: malformed base64url"
    assert _refusal(f"{b64url(b'nope')}.{body}.{sig}", pinned).startswith("token rejected: header is not acceptable JSON: ")
    assert _refusal(f"{b64url(b'[1]')}.{body}.{sig}", pinned) == "token rejected: header is not a JSON object"
    hs = jwt.encode({"a": 1}, "s" * 32, algorithm="HS256", headers={"kid": store.current_kid(), "typ": TYP})
    assert _refusal(hs, pinned) == "token rejected: algorithm 'HS256' is not allowed (only EdDSA)"
    assert _refusal(jws.sign({"a": 1}, store, "other"), pinned) == f"token rejected: type 'other' is not '{TYP}'"
    assert _refusal(_raw(store, b"{}", kid="k-9"), pinned) == (
        "token rejected: signed by unknown key 'k-9' (not among the pinned HQ keys)")
    assert _refusal(f"{head}.{body}.{sig[:-4]}AAAA", pinned) == (
        "token rejected: signature does not verify (tampered or wrong key)")
    assert _refusal(_raw(store, b"not json"), pinned).startswith("token rejected: payload is not acceptable JSON: ")
    assert _refusal(_raw(store, b"[1, 2]"), pinned) == "token rejected: payload is not a JSON object"


def test_the_kid_of_a_verified_token(store, pinned):
    token = jws.sign({"a": 1}, store, TYP)
    assert jws.header_kid("\n" + token + " ") == store.current_kid()


def test_a_payload_nests_at_most_eight_levels(store, pinned):
    def nested(levels: int) -> object:  # {"a": nested(n)} is n levels deep: the object is the first
        value: object = 1
        for _ in range(levels - 1):
            value = [value]
        return value

    assert jws.verify(jws.sign({"a": nested(8)}, store, TYP), pinned, TYP)["a"] == nested(8)
    assert _refusal(jws.sign({"a": nested(9)}, store, TYP), pinned) == (
        "token rejected: payload is not acceptable JSON: JSON nests deeper than 8 levels")
