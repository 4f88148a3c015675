"""Request bodies are limited before parsing and before auth: 413, and the server's memory stays put.

HQ read a 64 MB unauthenticated `POST /v1/orders` whole before answering 401
(+32 MB resident); the storefront parsed any form whole. Each server now
answers 413 from the declared length, or as soon as a chunked body passes
its limit, without holding the body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx
import pytest

from hq.testing import free_port
from tests.security.support import python_module, rss, send_big_body, server_process

BIG = 64 * 1024 * 1024
GROWTH_LIMIT = 8 * 1024 * 1024  # what a 64 MB body may add to the server's resident memory


@pytest.fixture(scope="module")
def hq_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """`python -m hq` as HQ runs it: (port, pid)."""
    tmp = tmp_path_factory.mktemp("hq-proc")
    port = free_port()
    env = {"KIT_HQ_DIR": str(tmp / "hq"), "KIT_HQ_BIND": f"127.0.0.1:{port}", "KIT_HQ_REGISTRY_URL": ""}
    with server_process(python_module("hq"), env, f"http://127.0.0.1:{port}/healthz", tmp / "hq.log") as proc:
        yield port, proc.pid


@pytest.fixture(scope="module")
def shop_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """`python -m storefront` on a seeded SQLite site: (port, pid)."""
    from tests.storefront.support import seed, write_site_files

    tmp = tmp_path_factory.mktemp("shop-proc")
    url = f"sqlite:///{tmp / 'site.db'}"
    seed(url)
    port = free_port()
    env = {**write_site_files(tmp / "site"), "KIT_DATABASE_URL": url, "KIT_BIND": f"127.0.0.1:{port}",
           "KIT_METRICS_BIND": f"127.0.0.1:{free_port()}", "KIT_LOG_LEVEL": "warning"}  # never the default port
    with server_process(python_module("storefront"), env, f"http://127.0.0.1:{port}/healthz",
                        tmp / "shop.log") as proc:
        yield port, proc.pid


def _growth(pid: int, port: int, path: str, chunked: bool) -> tuple[int, int]:
    before = rss(pid)
    status = send_big_body(port, path, BIG, chunked=chunked)
    return status, rss(pid) - before


@pytest.mark.parametrize("path", ["/v1/orders", "/v1/heartbeat", "/v1/admin/licences", "/fleet/login"])
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_hq_refuses_a_64mb_unauthenticated_body_with_413(hq_process, path, chunked):
    port, pid = hq_process
    status, growth = _growth(pid, port, path, chunked)
    assert status == 413
    assert growth < GROWTH_LIMIT, f"HQ grew by {growth / 1e6:.1f} MB"


def test_hq_413_is_one_line_json_and_small_bodies_still_reach_auth(hq_process):
    port, _ = hq_process
    resp = httpx.post(f"http://127.0.0.1:{port}/v1/orders", content=b"x" * (1024 * 1024 + 1))
    assert resp.status_code == 413 and "\n" not in resp.text
    assert resp.json() == {"error": "too_large", "detail": "request body is larger than 1048576 bytes"}
    assert httpx.post(f"http://127.0.0.1:{port}/v1/orders", json={"orders": []}).status_code == 401


@pytest.mark.parametrize("path", ["/order", "/admin/login", "/p/G-QQ-100/checkout"])
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_storefront_refuses_a_64mb_body_with_413(shop_process, path, chunked):
    port, pid = shop_process
    status, growth = _growth(pid, port, path, chunked)
    assert status == 413
    assert growth < GROWTH_LIMIT, f"the storefront grew by {growth / 1e6:.1f} MB"
