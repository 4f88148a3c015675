"""Licence tokens: what verifies, and everything that must not."""

from __future__ import annotations

import json
import stat
import time

import jwt
import pytest

from kitcore.errors import InvalidInput, LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import HQKeyStore, b64url, b64url_decode, load_jwks, raw_public_bytes
from kitcore.licence.token import GRACE_SECONDS, LICENCE_TYP, issue_licence, verify_licence

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_issued_licence_verifies_with_its_claims(issue, pinned, store):
    licence = verify_licence(issue(), pinned)
    assert licence.status == "valid"
    assert licence.claims.sub == "xingchen"
    assert licence.claims.tier == "pro"
    assert "coupons" in licence.claims.features  # from the tier table
    assert licence.claims.categories == ["game", "phone"]
    assert licence.kid == store.current_kid()
    assert 363 <= licence.days_left <= 365
    header = jwt.get_unverified_header(issue())
    assert header == {"alg": "EdDSA", "kid": store.current_kid(), "typ": LICENCE_TYP}


def test_every_single_character_change_is_rejected(issue, pinned):
    token = issue()
    rejected = tried = 0
    for i, ch in enumerate(token):
        for replacement in {B64URL[(B64URL.find(ch) + k) % 64] for k in (1, 17, 40)} | {"."}:
            if replacement == ch:
                continue
            tried += 1
            mutated = token[:i] + replacement + token[i + 1:]
            with pytest.raises(LicenceError):
                verify_licence(mutated, pinned)
            rejected += 1
    assert tried == rejected and tried > 3 * len(token)


def test_every_byte_flip_of_decoded_parts_is_rejected(issue, pinned):
    """Flip each bit-group of each decoded byte of header, payload and signature."""
    token = issue()
    parts = [bytearray(b64url_decode(p)) for p in token.split(".")]
    count = 0
    for index, part in enumerate(parts):
        for pos in range(len(part)):
            for mask in (0x01, 0x80):
                mutated = [bytearray(p) for p in parts]
                mutated[index][pos] ^= mask
                text = ".".join(b64url(bytes(p)) for p in mutated)
                with pytest.raises(LicenceError):
                    verify_licence(text, pinned)
                count += 1
    assert count == 2 * sum(len(p) for p in parts)


def test_unknown_signing_key_is_rejected(tmp_path, pinned):
    other = HQKeyStore(tmp_path / "other")
    other.init()
    token = issue_licence(other, site="xingchen", tier="basic", categories=["game"], days=30, hq_url="https://hq")
    with pytest.raises(LicenceError, match="unknown key"):
        verify_licence(token, pinned)


def _unsigned(header: dict, payload: dict, signature: bytes = b"\x00" * 64) -> str:
    enc = lambda d: b64url(json.dumps(d).encode())  # noqa: E731
    return f"{enc(header)}.{enc(payload)}.{b64url(signature)}"


def _claims(issue, pinned) -> dict:
    return verify_licence(issue(), pinned).claims.model_dump(exclude_none=True)


def test_alg_none_is_rejected(issue, pinned, store):
    token = _unsigned({"alg": "none", "kid": store.current_kid(), "typ": LICENCE_TYP}, _claims(issue, pinned))
    with pytest.raises(LicenceError, match="only EdDSA"):
        verify_licence(token, pinned)
    bare = token.rsplit(".", 1)[0] + "."
    with pytest.raises(LicenceError):
        verify_licence(bare, pinned)


def test_hs256_with_the_public_key_as_secret_is_rejected(issue, pinned, store):
    secret = raw_public_bytes(store.public_key(store.current_kid()))
    token = jwt.encode(_claims(issue, pinned), secret, algorithm="HS256",
                       headers={"kid": store.current_kid(), "typ": LICENCE_TYP})
    with pytest.raises(LicenceError, match="only EdDSA"):
        verify_licence(token, pinned)


def test_a_command_cannot_pass_as_a_licence(issue, pinned, store):
    token = jws.sign(_claims(issue, pinned), store, typ="kitctl-command+jwt")
    with pytest.raises(LicenceError, match="type"):
        verify_licence(token, pinned)


def test_expiry_grace_and_beyond(issue, pinned):
    now = time.time()
    token = issue(days=1)
    in_grace = verify_licence(token, pinned, now=now + 86400 + 3600)
    assert in_grace.status == "grace" and in_grace.days_left < 0
    with pytest.raises(LicenceError, match="beyond the grace period"):
        verify_licence(token, pinned, now=now + 86400 + GRACE_SECONDS + 3600)


def test_not_yet_valid_is_rejected_but_small_skew_is_allowed(issue, pinned):
    token = issue()
    assert verify_licence(token, pinned, now=time.time() - 60).status == "valid"
    with pytest.raises(LicenceError, match="not valid yet"):
        verify_licence(token, pinned, now=time.time() - 3600)


@pytest.mark.parametrize("claim", ["iss", "sub", "jti", "iat", "nbf", "exp", "tier", "features",
                                   "categories", "regions", "revenue_share_bps", "hq_url"])
def test_missing_required_claim_is_rejected(issue, pinned, store, claim):
    claims = _claims(issue, pinned)
    del claims[claim]
    with pytest.raises(LicenceError, match=f"required claim '{claim}' is missing"):
        verify_licence(jws.sign(claims, store, LICENCE_TYP), pinned)


@pytest.mark.parametrize("claim,value", [
    ("exp", "2030-01-01"), ("exp", 1.5e9), ("categories", "game"), ("features", [1, 2]),
    ("revenue_share_bps", "1200"), ("revenue_share_bps", 20000), ("sub", "Bad Site"),
    ("tier", "platinum"), ("hq_url", "ftp://x"), ("registry", {"url": "r", "username": 5}),
    ("iat", True),
])
def test_wrong_claim_types_are_rejected(issue, pinned, store, claim, value):
    claims = _claims(issue, pinned)
    claims[claim] = value
    with pytest.raises(LicenceError, match=f"claim '{claim}"):
        verify_licence(jws.sign(claims, store, LICENCE_TYP), pinned)


def test_absurdly_large_token_is_rejected_before_parsing(issue, pinned, store):
    claims = _claims(issue, pinned)
    claims["regions"] = ["CN"] * 5000
    with pytest.raises(LicenceError, match="byte limit"):
        verify_licence(jws.sign(claims, store, LICENCE_TYP), pinned)
    with pytest.raises(LicenceError):
        verify_licence("a" * 10_000_000, pinned)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c.d", "é.é.é", None, 12, "....", "a..b"])
def test_garbage_is_rejected_with_one_line(pinned, garbage):
    with pytest.raises(LicenceError) as info:
        verify_licence(garbage, pinned)
    assert "\n" not in str(info.value)


def test_rotation_keeps_old_tokens_verifying_until_retired(store, issue):
    old_kid = store.current_kid()
    old_token = issue()
    store.rotate()
    assert store.current_kid() != old_kid
    new_token = issue()
    pinned = load_jwks(store.jwks())
    assert verify_licence(old_token, pinned).kid == old_kid
    assert verify_licence(new_token, pinned).kid == store.current_kid()
    store.retire(old_kid)
    pinned = load_jwks(store.jwks())
    with pytest.raises(LicenceError, match="unknown key"):
        verify_licence(old_token, pinned)
    with pytest.raises(InvalidInput, match="cannot be retired"):
        store.retire(store.current_kid())


def test_private_keys_are_0600_and_init_refuses_to_overwrite(store):
    for pem in store.dir.glob("*.pem"):
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    with pytest.raises(InvalidInput, match="already exist"):
        store.init()


@pytest.mark.parametrize("kwargs,message", [
    (dict(tier="gold"), "unknown tier"),
    (dict(categories=["game", "phone", "gift"], tier="basic"), "at most 2 categories"),
    (dict(categories=["weapons"]), "unknown categories"),
    (dict(days=0), "--days"),
    (dict(site="../etc"), "site id"),
    (dict(hq_url="not a url"), "hq_url"),
])
def test_issue_validates_its_inputs(issue, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        issue(**kwargs)


@pytest.mark.parametrize("doc,message", [
    ({}, "not a JWKS"),
    ({"keys": []}, "not a JWKS"),
    ({"keys": [{"kty": "RSA", "kid": "a", "n": "x", "e": "AQAB"}]}, "only Ed25519"),
    ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "AAAA"}]}, "not a valid Ed25519"),
])
def test_bad_pinned_keys_are_refused(doc, message):
    with pytest.raises(InvalidInput, match=message):
        load_jwks(doc)
