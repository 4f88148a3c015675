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
from tests.support.slowdns import slow_dns

TABLES = {"catalog_items", "price_rules", "orders", "site_state", "hq_commands", "admin_users", "audit_log",
          "settlement_statements", "settlement_entries"}


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


@pytest.mark.postgres
def test_the_storefront_and_the_agent_migrating_a_new_database_together_both_succeed(pg_url):
    """They start at the same moment on a fresh database; without a lock one died on `alembic_version`."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys; from sitedb.migrate import upgrade; upgrade(sys.argv[1])"  # alembic is one per process
    root = str(Path(__file__).resolve().parents[1])
    starts = [subprocess.Popen([sys.executable, "-c", code, pg_url], cwd=root, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": root}) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in starts]
    assert [p.returncode for p in starts] == [0, 0, 0], errors
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


def test_a_database_whose_name_does_not_resolve_fails_within_the_connect_deadline(monkeypatch):
    """A stopped container's name takes Docker's DNS ~10 s to fail; a connect gives up after ~1 s (issue 26)."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    slow_dns(monkeypatch)
    engine = make_engine("postgresql+psycopg://kit:pw@db.stopped.test:5432/kit")
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(OperationalError, match="cannot reach the database"):
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            assert time.monotonic() - started < 1.3
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_pooled_connections_survive_a_database_restart(pg_url):
    """After the server ended every session, no request gets a dead pooled connection."""
    from sqlalchemy import text

    engine = make_engine(pg_url)
    try:
        conns = [engine.connect() for _ in range(3)]
        pids = {c.execute(text("SELECT pg_backend_pid()")).scalar() for c in conns}
        for c in conns:
            c.close()
        with make_engine(pg_url).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(:p)"),
                          {"p": list(pids)})
            admin.commit()
        for _ in range(6):
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_while_the_database_is_down_one_request_retries_and_the_others_fail_at_once(monkeypatch):
    """An outage costs each request nothing but the one retrying; the first try after it is back succeeds."""
    import threading
    import time

    from sqlalchemy.exc import OperationalError

    slow_dns(monkeypatch)
    engine = make_engine("postgresql+psycopg://kit:pw@db.stopped.test:5432/kit")
    try:
        with pytest.raises(OperationalError):
            engine.connect()  # the outage is found (within the deadline)
        retrying = threading.Thread(target=lambda: pytest.raises(OperationalError, engine.connect))
        retrying.start()
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="another request is retrying"):
            engine.connect()
        assert time.monotonic() - started < 0.1
        retrying.join(2)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_storefront_and_the_agent_migrating_at_once_both_succeed(pg_url):
    """Both services migrate at start; on a fresh database they used to race on CREATE TABLE (a crash)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    # everything imported first, then all start together, as two containers started at once do
    code = ("import os, time, alembic.command, psycopg, sitedb.engine; from sitedb.migrate import upgrade; "
            "time.sleep(max(0.0, float(os.environ['AT']) - time.time())); upgrade(os.environ['URL'])")
    env = {**os.environ, "URL": pg_url, "PYTHONPATH": str(root), "AT": str(time.time() + 4)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root, stderr=subprocess.PIPE)
             for _ in range(4)]
    failures = [p.stderr.read().decode()[-300:] for p in procs if p.wait(120) != 0]  # type: ignore[union-attr]
    assert not failures, failures[0]
    assert TABLES <= _tables(pg_url)


@pytest.mark.postgres
def test_a_burst_reuses_the_pooled_postgresql_connections_instead_of_opening_new_ones(pg_url):
    """Two bursts of three times as many concurrent users as the pool holds: at most POOL_SIZE connections are
    ever opened, all in the first burst (a connection opened per request beyond the pool is a name lookup, a
    TCP connect and a backend start each, which on a loaded host exceed the storefront's connect deadline)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import event, text

    from sitedb.engine import POOL_SIZE

    engine = make_engine(pg_url)
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_: opened.append(threading.get_ident()))

    def use(_n: int) -> int:
        with engine.connect() as conn:
            time.sleep(0.05)
            return int(conn.execute(text("SELECT 1")).scalar_one())

    try:
        with ThreadPoolExecutor(3 * POOL_SIZE) as pool:
            assert sum(pool.map(use, range(6 * POOL_SIZE))) == 6 * POOL_SIZE
            first = len(opened)
            assert sum(pool.map(use, range(6 * POOL_SIZE))) == 6 * POOL_SIZE
        assert first <= POOL_SIZE and len(opened) == first, (first, len(opened))
        assert engine.pool.checkedin() == first  # all kept open for the next burst
    finally:
        engine.dispose()
