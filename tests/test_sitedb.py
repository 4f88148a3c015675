"""The shared site schema migrates on both databases and seals card keys."""

import base64
import os

import pytest
from sqlalchemy import inspect

from sitedb.engine import make_engine
from sitedb.migrate import upgrade
from sitedb.sealing import open_sealed, seal

TABLES = {"catalog_items", "price_rules", "orders", "site_state", "hq_commands", "admin_users", "audit_log"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_create_every_table_on_sqlite_and_are_rerunnable(tmp_path):
    url = f"sqlite:///{tmp_path / 'site.db'}"
    upgrade(url)
    upgrade(url)  # a second start must be a no-op
    assert TABLES <= _tables(url)


@pytest.mark.postgres
def test_migrations_create_every_table_on_postgres(pg_url):
    upgrade(pg_url)
    assert TABLES <= _tables(pg_url)


def test_sealed_delivery_opens_only_with_the_site_key():
    key, other = os.urandom(32), os.urandom(32)
    sealed = seal(key, {"card_keys": [{"serial": "S1", "secret": "ABCD-1234"}]})
    assert "ABCD-1234" not in sealed and "ABCD-1234" not in base64.b64decode(sealed).decode("latin-1")
    assert open_sealed(key, sealed)["card_keys"][0]["secret"] == "ABCD-1234"
    with pytest.raises(Exception):
        open_sealed(other, sealed)
