"""One error body across HQ, the storefront's JSON endpoints and the agent's local endpoints.

Each component's JSON refusals are checked against the `ErrorBody` schema HQ
publishes in /openapi.json: `{"error": lowercase code, "detail": one line}`.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from kitcore.errorbody import error_body

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


@pytest.fixture(scope="module")
def hq_error_schema(tmp_path_factory) -> Any:
    from hq.testing import running_hq

    with running_hq(tmp_path_factory.mktemp("errbody"), registry_url="") as hq:
        schema = httpx.get(f"{hq.url}/openapi.json").json()["components"]["schemas"]["ErrorBody"]
        refusals = [httpx.get(f"{hq.url}/v1/catalog"),  # 401
                    httpx.get(f"{hq.url}/v1/no-such-path"),  # 404
                    httpx.request("OPTIONS", f"{hq.url}/v1/admin/risk-rules"),  # 405
                    httpx.put(f"{hq.url}/v1/admin/risk-rules", headers=hq.admin_headers(), content=b"{")]  # 422
        yield schema, refusals


def _assert_shape(schema: dict[str, Any], response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    jsonschema.validate(body, schema)
    assert "\n" not in body["detail"] and body["detail"]


def test_error_body_keeps_one_line_and_refuses_a_bad_code():
    assert error_body("not_found", "line one\nline two", extra=1) == {"error": "not_found", "detail": "line one",
                                                                     "extra": 1}
    assert error_body("too_large", "") == {"error": "too_large", "detail": "too_large"}
    with pytest.raises(ValueError):
        error_body("Not Found", "x")


def test_hq_errors_have_the_documented_shape(hq_error_schema):
    schema, refusals = hq_error_schema
    assert [r.status_code for r in refusals] == [401, 404, 405, 422]
    for response in refusals:
        _assert_shape(schema, response)


def test_agent_local_endpoints_answer_with_the_same_shape(hq_error_schema):
    from agent.health import HealthServer
    from agent.metrics import AgentMetrics

    schema, _ = hq_error_schema
    server = HealthServer("127.0.0.1", 0, AgentMetrics(), lambda: (False, "site database unreachable"))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        missing, post, ready = (httpx.get(f"{base}/nope"), httpx.post(f"{base}/metrics"), httpx.get(f"{base}/readyz"))
    finally:
        server.stop()
    assert (missing.status_code, post.status_code, ready.status_code) == (404, 405, 503)
    assert post.headers["allow"] == "GET"
    for response in (missing, post, ready):
        _assert_shape(schema, response)
    assert ready.json()["error"] == "not_ready" and ready.json()["status"] == "not ready"


def test_storefront_json_refusal_has_the_same_shape(hq_error_schema, tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from storefront.app import create_app
    from storefront.settings import StorefrontSettings
    from tests.storefront.support import seed, write_site_files

    schema, _ = hq_error_schema
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    env = write_site_files(tmp_path / "site")
    app = create_app(StorefrontSettings(database_url=url, site_config=env["KIT_SITE_CONFIG"],
                                        secret_key_file=env["KIT_SECRET_KEY_FILE"], site_key_file=env["KIT_SITE_KEY_FILE"],
                                        branding_dir=env["KIT_BRANDING_DIR"]))

    def down() -> None:
        raise OSError("database down")

    monkeypatch.setattr(app.app.state.shop.engine, "connect", down)
    response = TestClient(app).get("/healthz")
    assert response.status_code == 503
    _assert_shape(schema, response)
    assert response.json()["error"] == "database_unreachable" and response.json()["database"] == "unreachable"
