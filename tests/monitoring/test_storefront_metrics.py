"""The storefront's /metrics: requests by route template, checkouts, lookups, throttling; own port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from storefront.settings import StorefrontSettings
from tests.monitoring.helpers import promtool_check_metrics, sample
from tests.storefront.http import NONCE, form_token
from tests.storefront.support import running_storefront, seed, write_site_files
from hq.testing import free_port

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


def _app(tmp_path: Path, url: str, **overrides):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from storefront.app import create_app

    env = write_site_files(tmp_path / "site")
    settings = StorefrontSettings(database_url=url, site_config=env["KIT_SITE_CONFIG"],
                                  secret_key_file=env["KIT_SECRET_KEY_FILE"], site_key_file=env["KIT_SITE_KEY_FILE"],
                                  branding_dir=env["KIT_BRANDING_DIR"], state_cache_seconds=0, **overrides)
    app = create_app(settings)
    return TestClient(app, base_url="http://testserver", follow_redirects=False), app.app.state.shop


def _checkout(client, sku: str, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/p/{sku}").text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw", **fields}
    return client.post(f"/p/{sku}/checkout", data=data)


def test_requests_checkouts_lookups_and_throttling_are_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, shop = _app(tmp_path, url, checkouts_per_minute=1)
    assert _checkout(client, "G-QQ-100").status_code == 303
    assert _checkout(client, "G-QQ-100").status_code == 429  # one checkout a minute from this address
    page = client.get("/order").text
    client.post("/order", data={"csrf": form_token(page), "order_id": "nope", "password": "x"})
    client.get("/no/such/page")
    text = shop.metrics.render().decode()
    route = {"route": "/p/{sku}", "method": "GET", "status": "200"}
    assert sample(text, "kitshop_http_requests_total", route) == 2  # the template, never the SKU
    assert sample(text, "kitshop_http_requests_total", {"route": "/p/{sku}/checkout", "status": "303"}) == 1
    assert sample(text, "kitshop_http_requests_total", {"route": "unmatched", "status": "404"}) == 1
    assert sample(text, "kitshop_http_request_duration_seconds_count", {"route": "/p/{sku}", "method": "GET"}) == 2
    assert sample(text, "kitshop_checkouts_total", {"outcome": "placed"}) == 1
    assert sample(text, "kitshop_checkouts_total", {"outcome": "throttled"}) == 1
    assert sample(text, "kitshop_throttled_requests_total", {"limit": "checkout_ip"}) == 1
    assert sample(text, "kitshop_order_lookups_total", {"outcome": "failed"}) == 1
    assert "G-QQ-100" not in text and "13800138000" not in text and "testclient" not in text
    promtool_check_metrics(text)


def test_a_closed_site_counts_refused_checkouts_as_closed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url, status="revoked", reason="terms")
    client, shop = _app(tmp_path, url)
    assert _checkout(client, "G-QQ-100").status_code == 503
    assert sample(shop.metrics.render().decode(), "kitshop_checkouts_total", {"outcome": "closed"}) == 1


def test_the_real_process_serves_metrics_on_its_own_port_not_the_shop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    env = write_site_files(tmp_path / "site")
    port = free_port()
    env["KIT_METRICS_BIND"] = f"127.0.0.1:{port}"
    with running_storefront(url, env, tmp_path / "storefront.log") as base:
        assert httpx.get(f"{base}/p/G-QQ-100").status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 404  # the proxy forwards every path to the shop
        health = httpx.get(f"{base}/healthz").json()
        assert isinstance(health["started_at"], int)  # the agent tells a restart by it
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert sample(text, "kitshop_http_requests_total", {"route": "/p/{sku}", "status": "200"}) == 1
    assert sample(text, "kitshop_build_info") == 1
    promtool_check_metrics(text)


def test_a_bad_metrics_bind_is_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "KIT_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "KIT_METRICS_BIND": "9465"}
    run = subprocess.run([sys.executable, "-m", "storefront"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "KIT_METRICS_BIND" in run.stderr
