"""The shared site schema migrates on both databases, matches `sitedb.tables`, and seals card keys."""

import base64
import os
import typing

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect

from sitedb import models, tables
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


def _drift(url: str, metadata: MetaData) -> list:
    """What Alembic's autogenerate would change to turn the migrated schema into `metadata`."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()


def _with_extra_column() -> MetaData:
    """A copy of the schema with one column more: the comparison must notice it."""
    copy = MetaData()
    for table in tables.metadata.sorted_tables:
        table.to_metadata(copy)
    copy.tables["orders"].append_column(Column("not_migrated", Integer, nullable=True))
    return copy


def _assert_migrations_match_tables(url: str) -> None:
    upgrade(url)
    assert _drift(url, tables.metadata) == []  # columns, types, nullability, indexes, unique constraints
    diff = _drift(url, _with_extra_column())
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "not_migrated")]


def test_migrations_match_the_core_tables_on_sqlite(tmp_path):
    _assert_migrations_match_tables(f"sqlite:///{tmp_path / 'site.db'}")


@pytest.mark.postgres
def test_migrations_match_the_core_tables_on_postgres(pg_url):
    _assert_migrations_match_tables(pg_url)


@pytest.mark.parametrize("model", [models.CatalogItem, models.PriceRule, models.Order, models.SiteState,
                                   models.HQCommand, models.AdminUser, models.AuditEntry])
def test_orm_classes_map_the_core_tables_and_type_every_column(model):
    """One definition per table: the ORM class maps the Core table, its annotations name exactly its columns."""
    assert model.__table__ is tables.metadata.tables[model.__table__.name]
    assert models.Base.metadata is tables.metadata
    annotated = set(typing.get_type_hints(model, globalns=vars(models)))
    assert annotated == {c.name for c in model.__table__.columns}


def test_the_price_rule_fields_are_the_price_rule_columns():
    """`sitedb.pricing.Rule` is the one definition of a rule's fields: the table has them and only adds timestamps."""
    from sitedb.pricing import RULE_FIELDS

    columns = {c.name for c in tables.price_rules.columns}
    assert columns - set(RULE_FIELDS) == {"created_at", "updated_at"}
    assert set(RULE_FIELDS) <= columns


def test_sealed_delivery_opens_only_with_the_site_key():
    key, other = os.urandom(32), os.urandom(32)
    sealed = seal(key, {"card_keys": [{"serial": "S1", "secret": "ABCD-1234"}]})
    assert "ABCD-1234" not in sealed and "ABCD-1234" not in base64.b64decode(sealed).decode("latin-1")
    assert open_sealed(key, sealed)["card_keys"][0]["secret"] == "ABCD-1234"
    with pytest.raises(Exception):
        open_sealed(other, sealed)
