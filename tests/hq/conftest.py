"""Fixtures for HQ tests: a real HQ server on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Iterator

import pytest

from hq.testing import RunningHQ, running_hq
from tests.hq import pg


@pytest.fixture(scope="session")
def hq_pg_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The project-wide `pg_server` cluster when tests/conftest.py provides it, else our own."""
    try:
        yield request.getfixturevalue("pg_server").replace("postgresql+psycopg://", "postgresql://", 1)
        return
    except pytest.FixtureLookupError:
        pass
    if not pg.available():
        pytest.skip("PostgreSQL 15 is not installed")
    with pg.cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None (SQLite in the HQ dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("hq_pg_server")
    with pg.fresh_database(server, template=request.getfixturevalue("hq_pg_template")) as url:
        yield url


@pytest.fixture(scope="session")
def hq_pg_template(hq_pg_server) -> str:
    """A migrated database that each test's database is copied from."""
    return pg.migrated_template(hq_pg_server)


@pytest.fixture
def hq_server(tmp_path, db_url) -> Iterator[RunningHQ]:
    with running_hq(tmp_path, database_url=db_url) as hq:
        yield hq


@pytest.fixture
def sqlite_hq(tmp_path) -> Iterator[RunningHQ]:
    with running_hq(tmp_path) as hq:
        yield hq
