"""Fixtures of the security suite: HQ's keys, a served HQ, and crafted tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kitcore.licence import jws
from kitcore.licence.keys import HQKeyStore, b64url
from kitcore.licence.token import LICENCE_TYP

NESTED = b"[" * 2500 + b"]" * 2500


def nested_header_token() -> str:
    """A token whose header is 2,500 levels of JSON arrays: the stdlib's decoder recursed on it."""
    return f"{b64url(NESTED)}.eyJ4IjoxfQ.{b64url(b'x' * 64)}"


def licence_claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": "kitctl-hq", "sub": "xingchen", "jti": "j1", "iat": now, "nbf": now, "exp": now + 86400,
              "tier": "pro", "features": [], "categories": ["game"], "regions": ["CN"],
              "revenue_share_bps": 1000, "hq_url": "https://hq.example.cn"}
    claims.update(over)
    return claims


def sign_licence(store: HQKeyStore, **over: Any) -> str:
    """A licence HQ really signed (so only its claims can be wrong)."""
    return jws.sign(licence_claims(**over), store, LICENCE_TYP)


@pytest.fixture(scope="session")
def key_store(tmp_path_factory: pytest.TempPathFactory) -> HQKeyStore:
    store = HQKeyStore(tmp_path_factory.mktemp("hq-keys"))
    store.init()
    return store


@pytest.fixture(scope="session")
def keys_file(key_store: HQKeyStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pinned") / "hq-keys.json"
    path.write_text(json.dumps(key_store.jwks()))
    return path


@pytest.fixture(scope="module")
def served_hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real HQ (uvicorn on loopback, SQLite) shared by a module's tests."""
    from hq.testing import running_hq

    with running_hq(tmp_path_factory.mktemp("hq")) as server:
        yield server


def raw_sign(payload: bytes, store: HQKeyStore, typ: str) -> str:
    """Sign any bytes as a JWS payload with HQ's key (PyJWT refuses some claim types outright)."""
    kid, key = store.signing_key()
    header = json.dumps({"alg": "EdDSA", "kid": kid, "typ": typ}).encode()
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"
