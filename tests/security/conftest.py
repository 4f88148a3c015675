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


class Shop:
    """The storefront app in-process on a seeded SQLite site; `client(ip)` is a browser at that address."""

    def __init__(self, tmp_path: Path) -> None:
        from starlette.testclient import TestClient

        from storefront.app import create_app
        from storefront.settings import StorefrontSettings
        from tests.storefront.support import seed, write_site_files

        self.db_url = f"sqlite:///{tmp_path / 'site.db'}"
        seed(self.db_url)
        env = write_site_files(tmp_path / "site")
        settings = StorefrontSettings(database_url=self.db_url, site_config=env["KIT_SITE_CONFIG"],
                                      secret_key_file=env["KIT_SECRET_KEY_FILE"], site_key_file=env["KIT_SITE_KEY_FILE"],
                                      branding_dir=env["KIT_BRANDING_DIR"], state_cache_seconds=0,
                                      migrate_on_start=False)
        self.app = create_app(settings)
        self._client = TestClient

    def client(self, ip: str = "203.0.113.1") -> Any:
        return self._client(self.app, base_url="http://testserver", follow_redirects=False, client=(ip, 40000))

    def add_staff(self, username: str, role: str = "admin") -> str:
        from storefront.admin_users import create_admin

        return create_admin(self.db_url, username, role=role, migrate=False)

    def login(self, username: str, password: str, ip: str = "203.0.113.1") -> Any:
        client = self.client(ip)
        resp = self.attempt(client, username, password)
        assert resp.status_code == 303, resp.status_code
        return client

    @staticmethod
    def attempt(client: Any, username: str, password: str) -> Any:
        from tests.storefront.http import form_token

        token = form_token(client.get("/admin/login").text)
        return client.post("/admin/login", data={"csrf": token, "username": username, "password": password})

    def audit_actions(self) -> list[str]:
        from sqlalchemy import select

        from sitedb.engine import make_engine
        from sitedb.tables import audit_log

        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [r.action for r in conn.execute(select(audit_log.c.action).order_by(audit_log.c.id))]
        finally:
            engine.dispose()


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path)
