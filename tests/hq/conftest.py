"""Fixtures for HQ tests: a real HQ server on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from hq.testing import RunningHQ, running_hq
from tests.hq import pg


@pytest.fixture(scope="session")
def hq_pg_server(pg_server: str) -> str:
    """The suite's real PostgreSQL cluster (tests/conftest.py)."""
    return pg.plain(pg_server)


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
    """A migrated database that each test's database is copied from.

    KITCTL_TEST_HQ_PG_TEMPLATE names one already migrated on the cluster (the
    mutation runner migrates once for thousands of short pytest sessions).
    """
    return os.environ.get("KITCTL_TEST_HQ_PG_TEMPLATE") or pg.migrated_template(hq_pg_server)


@pytest.fixture
def hq_server(tmp_path, db_url) -> Iterator[RunningHQ]:
    with running_hq(tmp_path, database_url=db_url) as hq:
        yield hq


@pytest.fixture
def sqlite_hq(tmp_path) -> Iterator[RunningHQ]:
    with running_hq(tmp_path) as hq:
        yield hq
