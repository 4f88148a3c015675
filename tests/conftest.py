"""Fixtures every suite can use. Suites keep their own fixtures in their folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import settings

from tests.support.postgres import create_database, pg_bindir, postgres_cluster

IN_CI = os.environ.get("CI") == "true"
pytest_plugins = ["tests.support.watched_demo"]  # the session's shared demo with monitoring

# CI replays the same examples every run, so a red build is reproducible;
# developers get fresh random examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")


def require(condition: bool, why: str) -> None:
    """Skip when a real part is missing on a developer machine; fail in CI, never skip silently."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {why}")
    pytest.skip(why)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`-n 2 --dist loadgroup`, as `make test` runs), every test that drives the
    Docker engine runs on one worker, one at a time and in file order: they build and tag the same kit
    images and share module-scoped stacks. They come first, so that long group starts at once while the
    other tests spread over the workers beside it."""
    engine = [item for item in items if item.get_closest_marker("e2e") is not None]
    for item in engine:
        item.add_marker(pytest.mark.xdist_group("engine"))
    chosen = set(map(id, engine))
    items[:] = engine + [item for item in items if id(item) not in chosen]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A real PostgreSQL cluster for the whole run (or KITCTL_TEST_PG_URL if set)."""
    if os.environ.get("KITCTL_TEST_PG_URL"):
        yield os.environ["KITCTL_TEST_PG_URL"]
        return
    require(pg_bindir() is not None, "PostgreSQL server is not installed")
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh empty database on the real cluster, for one test."""
    return create_database(pg_server)


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave screenshots and logs for people to look at."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
