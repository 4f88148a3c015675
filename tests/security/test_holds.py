"""Defences that already held when the review attacked them, kept here so they stay held."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from kitcore.errors import LicenceError
from kitcore.licence.keys import b64url, raw_public_bytes
from kitcore.licence.token import LICENCE_TYP, verify_licence
from tests.security.conftest import licence_claims, sign_licence
from tests.storefront.http import form_token


def _forge(header: dict, claims: dict, key: bytes | None) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64url(sig)}"


def test_alg_confusion_hs256_with_the_public_key_is_refused(key_store):
    kid = next(iter(key_store.pinned().by_kid))
    public = raw_public_bytes(key_store.pinned().by_kid[kid])
    for secret in (public, base64.b64encode(public), json.dumps(key_store.jwks()).encode()):
        token = _forge({"alg": "HS256", "kid": kid, "typ": LICENCE_TYP}, licence_claims(), secret)
        with pytest.raises(LicenceError, match="only EdDSA"):
            verify_licence(token, key_store.pinned())


def test_alg_none_is_refused(key_store):
    kid = next(iter(key_store.pinned().by_kid))
    token = _forge({"alg": "none", "kid": kid, "typ": LICENCE_TYP}, licence_claims(), None) + "AA"
    with pytest.raises(LicenceError):
        verify_licence(token, key_store.pinned())


def test_a_key_hq_never_pinned_is_refused(key_store, tmp_path):
    from kitcore.licence.keys import HQKeyStore

    other = HQKeyStore(tmp_path / "other")
    other.init()
    with pytest.raises(LicenceError, match="unknown key"):
        verify_licence(sign_licence(other), key_store.pinned())


def test_a_command_cannot_pass_as_a_licence(key_store):
    from kitcore.licence import jws

    token = jws.sign(licence_claims(), key_store, "kitctl-command+jwt")
    with pytest.raises(LicenceError, match="type"):
        verify_licence(token, key_store.pinned())


def test_shop_forms_without_their_csrf_token_are_refused(shop):
    client = shop.client()
    client.get("/order")
    assert client.post("/order", data={"order_id": "ABC123", "password": "x"}).status_code == 403
    assert client.post("/order", data={"csrf": "forged", "order_id": "ABC123", "password": "x"}).status_code == 403
    page = client.get("/admin/login").text
    other_origin = client.post("/admin/login", data={"csrf": form_token(page), "username": "a", "password": "b"},
                               headers={"Origin": "https://evil.example"})
    assert other_origin.status_code == 403


def test_shop_pages_carry_a_strict_csp(shop):
    resp = shop.client().get("/")
    csp = resp.headers["content-security-policy"]
    for directive in ("script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and resp.headers["x-frame-options"] == "DENY"


def test_fleet_forms_without_the_session_csrf_token_are_refused(served_hq):
    import httpx

    served_hq.issue_licence("csrf-site")
    client = httpx.Client(base_url=served_hq.url, timeout=30, follow_redirects=False)
    client.post("/fleet/login", data={"token": served_hq.operator_token})
    resp = client.post("/fleet/sites/csrf-site/revoke", data={"csrf": "forged", "reason": "x"})
    assert resp.status_code == 403 and resp.json()["error"] == "csrf"
