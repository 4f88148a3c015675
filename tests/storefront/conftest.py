"""Fixtures: a seeded site database (SQLite or real PostgreSQL), the real server, headless Chromium."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import require
from tests.storefront.support import running_storefront, seed, write_site_files

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class Site:
    """One running storefront and what a test needs to reach it and stand in for the agent."""

    def __init__(self, url: str, base: str, env: dict[str, str]) -> None:
        self.db_url, self.base, self.env = url, base, env
        self.site_key = base64.b64decode(Path(env["KIT_SITE_KEY_FILE"]).read_text())


def _start(tmp_path: Path, url: str) -> Iterator[Site]:
    env = write_site_files(tmp_path / "site")
    seed(url)
    with running_storefront(url, env, tmp_path / "storefront.log") as base:
        yield Site(url, base, env)


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[Site]:
    yield from _start(tmp_path, f"sqlite:///{tmp_path / 'site.db'}")


@pytest.fixture(scope="module")
def module_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One SQLite-backed server shared by a module's read-mostly tests (starting one costs seconds)."""
    tmp = tmp_path_factory.mktemp("site")
    yield from _start(tmp, f"sqlite:///{tmp / 'site.db'}")


@pytest.fixture
def pg_site(tmp_path: Path, pg_url: str) -> Iterator[Site]:
    yield from _start(tmp_path, pg_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The same tests against the embedded default and against real PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'site.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    yield from _start(tmp_path, url)


@pytest.fixture(scope="session")
def chromium():  # type: ignore[no-untyped-def]
    require(shutil.which("chromium") is not None or os.path.exists(CHROMIUM), "Debian's chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
