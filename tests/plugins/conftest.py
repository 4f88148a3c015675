"""Fixtures of the plugin suite: real licences, a migrated site database, timing helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.plugins import fixture_plugins


@pytest.fixture(scope="session")
def hq_store(tmp_path_factory: pytest.TempPathFactory):
    from kitcore.licence.keys import HQKeyStore

    store = HQKeyStore(tmp_path_factory.mktemp("hq"))
    store.init()
    return store


@pytest.fixture(scope="session")
def jwks_file(hq_store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "hq-keys.json"
    path.write_text(json.dumps(hq_store.jwks()))
    return path


@pytest.fixture
def issue(hq_store):
    """issue(tier) -> a real signed licence token for site 'xingchen'."""
    from kitcore.licence.token import issue_licence

    def make(tier: str) -> str:
        return issue_licence(hq_store, "xingchen", tier, ["game"], 30, "http://127.0.0.1:8600")

    return make


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    (path / "secrets").mkdir(parents=True)
    return path


@pytest.fixture
def registry():
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sitedb.migrate import upgrade

    path = tmp_path_factory.mktemp("sitedb") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def site_db(tmp_path: Path, _migrated_template: Path) -> str:
    """A migrated SQLite site database (the embedded default), copied from one migration run."""
    import shutil

    target = tmp_path / "site.db"
    shutil.copyfile(_migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def engine(site_db: str) -> Iterator[Any]:
    from sitedb.engine import make_engine

    eng = make_engine(site_db)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True, scope="session")
def _release_hung_plugins() -> Iterator[None]:
    yield
    fixture_plugins.HANG_RELEASE.set()


@pytest.fixture
def kit(site_dir, jwks_file, capsys):
    """kit(*argv) -> (exit code, stdout, stderr) of `kitctl plugins ARGV` with --site-dir and --hq-keys set."""
    from kitctl.cli import run

    def call(*argv: str) -> tuple[int, str, str]:
        code = run(["plugins", *argv, "--site-dir", str(site_dir), "--hq-keys", str(jwks_file)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call
