"""Fixtures for render tests: a real HQ key store, real signed licences, a logo."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from kitcore.licence.keys import HQKeyStore
from kitcore.licence.token import issue_licence

# A real 1x1 PNG (IHDR, IDAT, IEND).
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SVG_OK = b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="#c00"/></svg>'


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KITCTL_ variable of the machine running the tests leaks into them."""
    import os

    for name in list(os.environ):
        if name.startswith("KITCTL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def hq(tmp_path_factory: pytest.TempPathFactory) -> HQKeyStore:
    store = HQKeyStore(tmp_path_factory.mktemp("hq"))
    store.init()
    return store


@pytest.fixture(scope="session")
def hq_keys_file(hq: HQKeyStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pinned") / "hq-keys.json"
    path.write_text(json.dumps(hq.jwks()))
    return path


@pytest.fixture(scope="session")
def make_licence(hq: HQKeyStore, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Write a freshly signed licence to a file; returns the path (use as @path)."""
    counter = iter(range(10_000))

    def make(tier: str = "pro", categories: tuple[str, ...] = ("game", "phone"), **kw: Any) -> Path:
        token = issue_licence(hq, kw.pop("site", "xingchen"), tier, list(categories), kw.pop("days", 365),
                              kw.pop("hq_url", "http://127.0.0.1:8600"), **kw)
        path = tmp_path_factory.mktemp("lic") / f"licence-{next(counter)}.jwt"
        path.write_text(token)
        return path

    return make


@pytest.fixture(scope="session")
def pro_licence(make_licence: Callable[..., Path]) -> Path:
    return make_licence("pro", ("game", "phone"))


@pytest.fixture
def logo_png(tmp_path: Path) -> Path:
    path = tmp_path / "logo.png"
    path.write_bytes(PNG_1X1)
    return path


@pytest.fixture
def flags(tmp_path: Path, pro_licence: Path, hq_keys_file: Path, logo_png: Path) -> dict[str, Any]:
    """Flag values for a complete, valid render into tmp_path/site."""
    return {
        "licence": f"@{pro_licence}",
        "hq_keys": str(hq_keys_file),
        "name": "星辰游戏",
        "domain": "商店.example.cn",
        "logo": str(logo_png),
        "contact": "QQ 123456",
        "site_dir": str(tmp_path / "site"),
        "http_port": 8080,
        "https_port": 8443,
        "metrics_port": 19464,
    }


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under root: content, mode and mtime (to prove nothing was touched)."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            result[path.relative_to(root).as_posix()] = (path.read_bytes(), st.st_mode & 0o777, st.st_mtime_ns)
    return result
