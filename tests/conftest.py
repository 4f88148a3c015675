"""Fixtures every suite can use. Suites keep their own fixtures in their folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import settings

from tests.support.postgres import create_database, pg_bindir, postgres_cluster

IN_CI = os.environ.get("CI") == "true"
pytest_plugins = ["tests.support.watched_demo", "tests.support.worker_times"]  # shared demo; busy time per worker

# HQs the tests start (in-process and as child processes) share one PostgreSQL cluster with up to three test
# workers, containers and Chromium on two cores: a backend start there has taken over libpq's 2 s floor.
# HQ's production default (1 s) is for a database that answers; no test here times HQ's own connects.
os.environ.setdefault("KIT_HQ_DB_CONNECT_SECONDS", "10")

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


# Where the tests that drive the Docker engine live (the `e2e` marker); checked at collection below.
ENGINE_DIRS = ("tests/e2e/", "tests/images/", "tests/infra/")


def is_engine_test(nodeid: str) -> bool:
    path = nodeid.split("::", 1)[0]
    return path.startswith(ENGINE_DIRS) or path.endswith("_e2e.py")


# Engine modules that need not wait for the shared engine's ordered tests, and run beside them on a
# worker of their own: the Swarm modules (a private engine, tests/support/swarm_engine.py) and two modules
# with stacks of their own under their own tags on the shared engine. They share only the images, built
# once under a lock (tests.infra.fixtures.kit_images). The two own-stack modules balance the workers: the
# shared engine's tests are the suite's longest worker (docs/benchmarks.md, "The demo and the whole loop").
BESIDE_MODULES = ("tests/e2e/test_swarm", "tests/e2e/test_application_up.py", "tests/e2e/test_settlement_stack.py")


def runs_beside(nodeid: str) -> bool:
    return nodeid.split("::", 1)[0].startswith(BESIDE_MODULES)


def scheduling_unit(nodeid: str) -> str | None:
    """The unit the scheduler hands out whole: "beside", "engine", or None for "the test's own module"."""
    if runs_beside(nodeid):
        return "beside"
    return "engine" if is_engine_test(nodeid) else None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (`make test` runs `-n 3`), every engine test runs on one worker, one at a time
    and in file order: they build and tag the same kit images and share module- and session-scoped
    stacks. The modules that run beside them (the Swarm modules on their private engine, and two with
    stacks of their own: `BESIDE_MODULES`) go together to a second worker. The other tests
    spread over the workers beside them, a module at a time (its module-scoped fixtures are set up once,
    on one worker).

    The controller sees node ids only (no markers), so the engine tests are told by where they live.
    xdist's own `loadgroup` would read an `xdist_group` marker, but it marks node ids in a way
    pytest 9 no longer honours, and the group silently spread over both workers.
    """
    from xdist.scheduler import LoadScopeScheduling

    class EngineTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduling_unit(nodeid) or super()._split_scope(nodeid)  # else its module

    # Hand the units out in collection order (engine, then the slow modules: see below), not largest first:
    # a module of many quick unit tests is no reason to start before one slow browser test.
    config.option.loadscopereorder = False
    return EngineTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Engine tests first, so their long run starts at once; each must live where the scheduler finds it.
    Then the modules holding a `slow` or `browser` test, then the rest: the other worker takes the long
    modules while the engine tests run, and the short ones fill in at the end."""
    engine = [item for item in items if item.get_closest_marker("e2e") is not None]
    misplaced = [item.nodeid for item in engine if not is_engine_test(item.nodeid)]
    if misplaced:
        raise pytest.UsageError(f"e2e test outside {', '.join(ENGINE_DIRS)} or a *_e2e.py file "
                                f"(xdist would run it beside the others): {misplaced[0]}")
    chosen = set(map(id, engine))
    rest = [item for item in items if id(item) not in chosen]
    slow_modules = {item.nodeid.split("::", 1)[0] for item in rest
                    if item.get_closest_marker("slow") or item.get_closest_marker("browser")}
    engine.sort(key=lambda item: runs_beside(item.nodeid))  # the shared engine's ordered tests first, then the other unit
    items[:] = engine + sorted(rest, key=lambda item: item.nodeid.split("::", 1)[0] not in slow_modules)


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
