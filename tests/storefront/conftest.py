"""Fixtures: a seeded site database (SQLite or real PostgreSQL), the real server, headless Chromium."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import require
from tests.support.browser import CHROMIUM, chromium as launch_chromium
from tests.storefront.support import running_storefront, seed, write_site_files



class Site:
    """One running storefront and what a test needs to reach it and stand in for the agent."""

    def __init__(self, url: str, base: str, env: dict[str, str]) -> None:
        self.db_url, self.base, self.env = url, base, env
        self.site_key = base64.b64decode(Path(env["KIT_SITE_KEY_FILE"]).read_text())


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, seeded SQLite file made once; tests start from copies (migrating costs seconds)."""
    path = tmp_path_factory.mktemp("template") / "site.db"
    seed(f"sqlite:///{path}")
    return path


def _start(tmp_path: Path, url: str, migrate_on_start: bool = True) -> Iterator[Site]:
    env = write_site_files(tmp_path / "site")
    env["KIT_MIGRATE_ON_START"] = "true" if migrate_on_start else "false"
    if url.startswith("postgresql"):
        seed(url)
    with running_storefront(url, env, tmp_path / "storefront.log") as base:
        yield Site(url, base, env)


def _sqlite_copy(template: Path, directory: Path) -> str:
    target = directory / "site.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def sqlite_site(tmp_path: Path, seeded_sqlite: Path) -> Iterator[Site]:
    """A fresh server on its own SQLite copy; this one also runs the migrations at start, as in the stack."""
    yield from _start(tmp_path, _sqlite_copy(seeded_sqlite, tmp_path), migrate_on_start=True)


@pytest.fixture(scope="module")
def module_site(tmp_path_factory: pytest.TempPathFactory, seeded_sqlite: Path) -> Iterator[Site]:
    """One SQLite-backed server shared by a module's tests (starting one costs seconds)."""
    tmp = tmp_path_factory.mktemp("site")
    yield from _start(tmp, _sqlite_copy(seeded_sqlite, tmp), migrate_on_start=False)


@pytest.fixture
def pg_site(tmp_path: Path, pg_url: str) -> Iterator[Site]:
    yield from _start(tmp_path, pg_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path: Path, seeded_sqlite: Path) -> Iterator[Site]:
    """The same tests against the embedded default and against real PostgreSQL."""
    if request.param == "sqlite":
        yield from _start(tmp_path, _sqlite_copy(seeded_sqlite, tmp_path), migrate_on_start=False)
    else:
        yield from _start(tmp_path, request.getfixturevalue("pg_url"))


@pytest.fixture(scope="module")
def chromium():  # type: ignore[no-untyped-def]
    """One browser a module: Playwright's sync API marks its event loop as the thread's running loop while
    it is open, so a browser kept for the session makes every later asyncio.run() on that worker fail."""
    require(CHROMIUM.exists(), "Debian's chromium is not installed")
    with launch_chromium() as browser:
        yield browser
