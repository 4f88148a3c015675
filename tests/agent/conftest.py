"""Fixtures of the agent suite: a real HQ server, a site database (SQLite or PostgreSQL), a site dir."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine

from tests.agent.helpers import OPEN_RULES, SiteDir, make_site_dir, sqlite_url


@pytest.fixture(scope="module")
def shared_hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real HQ server (uvicorn on a loopback port, its own SQLite), shared by a module's tests."""
    from hq.testing import running_hq

    with running_hq(tmp_path_factory.mktemp("hq"), site_rate_per_second=10_000, site_rate_burst=10_000) as server:
        yield server


@pytest.fixture
def hq(shared_hq: object) -> object:
    """The module's HQ with open risk rules; each test uses its own site (orders are per site)."""
    shared_hq.set_rules(OPEN_RULES)  # type: ignore[attr-defined]
    return shared_hq


@pytest.fixture
def site_id() -> str:
    return "s" + uuid.uuid4().hex[:10]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The site database, on SQLite and on a real PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return request.getfixturevalue("pg_url")


@pytest.fixture
def site(tmp_path: Path, hq: object, site_db_url: str, site_id: str) -> SiteDir:
    return make_site_dir(tmp_path, hq, site_db_url, site_id=site_id)


@pytest.fixture
def started(site: SiteDir) -> Iterator[object]:
    """An Agent prepared in-process (migrated, licence verified) but with no loops running."""
    from agent.runner import Agent

    agent = Agent(site.settings(metrics_port=0))
    agent.start()
    yield agent
    agent.request_stop()
    agent.server.stop()
    for c in agent.clients:
        c.close()
    agent.engine.dispose()


@pytest.fixture
def engine(started: object) -> Engine:
    return started.engine  # type: ignore[attr-defined]
