"""Least exposure: metrics stay on loopback and can ask for a token, containers drop privileges,
the fleet page has a CSP and frame protection, HQ's API docs can be turned off.

Before, `--bind-address 0.0.0.0` published the agent's /metrics beside the
shop, the generated agent token was read by nothing, containers kept Docker's
default capabilities, the fleet page had no CSP, and /docs was always on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agent.health import HealthServer
from agent.metrics import AgentMetrics
from kitcore.licence.token import issue_licence
from kitctl.cli import run
from tests.render.conftest import PNG_1X1


@pytest.fixture
def render_flags(tmp_path: Path, key_store, keys_file) -> dict[str, str]:  # type: ignore[no-untyped-def]
    licence = tmp_path / "licence.jwt"
    licence.write_text(issue_licence(key_store, "xingchen", "pro", ["game"], 365, "http://127.0.0.1:8600"))
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG_1X1)
    return {"--licence": f"@{licence}", "--hq-keys": str(keys_file), "--name": "Shop", "--domain": "shop.example.cn",
            "--logo": str(logo), "--site-dir": str(tmp_path / "site")}


def _render(flags: dict[str, str], **extra: str) -> dict[str, Any]:
    argv = ["render"] + [part for pair in {**flags, **extra}.items() for part in pair]
    assert run(argv) == 0
    return yaml.safe_load((Path(flags["--site-dir"]) / "compose.yaml").read_text())


def test_a_public_shop_keeps_metrics_on_loopback(render_flags):
    compose = _render(render_flags, **{"--bind-address": "0.0.0.0"})
    assert compose["services"]["proxy"]["ports"][0].startswith("0.0.0.0:")
    assert compose["services"]["agent"]["ports"] == ["127.0.0.1:9464:9464"]
    assert "KIT_METRICS_AUTH" not in compose["services"]["agent"]["environment"]


def test_metrics_published_beyond_loopback_ask_for_the_agent_token(render_flags):
    compose = _render(render_flags, **{"--metrics-bind-address": "0.0.0.0"})
    agent = compose["services"]["agent"]
    assert agent["ports"] == ["0.0.0.0:9464:9464"]
    assert agent["environment"]["KIT_METRICS_AUTH"] == "token"
    assert agent["environment"]["KIT_AGENT_TOKEN_FILE"] == "/run/secrets/agent_token"
    assert "agent_token" in agent["secrets"]


def test_containers_drop_every_capability_they_do_not_need(render_flags):
    services = _render(render_flags)["services"]
    for name in ("proxy", "storefront", "agent", "db"):
        assert services[name]["cap_drop"] == ["ALL"], name
        assert services[name]["security_opt"] == ["no-new-privileges:true"], name
    assert services["db"]["cap_add"] == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"]
    assert all("cap_add" not in services[n] for n in ("proxy", "storefront", "agent"))
    assert services["proxy"]["read_only"] is True and services["proxy"]["tmpfs"] == ["/tmp"]


def test_the_structure_check_refuses_a_stack_without_its_limits(render_flags):
    from kitctl.render.escape import RenderError
    from kitctl.render.structure import check_structure

    doc = _render(render_flags)
    check_structure(doc)
    doc["services"]["agent"]["cap_drop"] = []
    with pytest.raises(RenderError, match="capability"):
        check_structure(doc)


def test_the_deploy_passes_the_limits_to_the_engine(render_flags):
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.spec import host_config

    _render(render_flags)
    project = load_project(Path(render_flags["--site-dir"]) / "compose.yaml")
    config = host_config(project, project.services["db"], lambda p: p)
    assert config["cap_drop"] == ["ALL"] and "SETUID" in config["cap_add"]
    assert config["security_opt"] == ["no-new-privileges:true"]


def test_metrics_ask_for_the_bearer_token_when_configured(tmp_path):
    from agent.settings import AgentSettings

    token_file = tmp_path / "agent_token"
    token_file.write_text("t" * 43 + "\n")
    settings = AgentSettings(_env_file=None, database_url="sqlite://", licence_file=tmp_path / "l",
                             hq_keys_file=tmp_path / "k", site_key_file=tmp_path / "s", metrics_auth="token",
                             agent_token_file=token_file)
    server = HealthServer("127.0.0.1", 0, AgentMetrics(), lambda: (True, "ok"), token=settings.metrics_token())
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 401
        assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
        ok = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {'t' * 43}"}, timeout=5)
        assert ok.status_code == 200 and "kitagent_up" in ok.text
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # the stack's probe needs no token
    finally:
        server.stop()


def test_the_fleet_page_has_a_csp_and_frame_protection(served_hq):
    for path in ("/fleet/login", "/fleet", "/fleet/fleet.css"):
        resp = httpx.get(served_hq.url + path, follow_redirects=False, timeout=10)
        csp = resp.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
        assert resp.headers.get("x-frame-options") == "DENY", path
    login = httpx.get(served_hq.url + "/fleet/login", timeout=10).text
    assert "<style" not in login and "style=" not in login  # nothing the CSP would block
    assert "content-security-policy" not in httpx.get(served_hq.url + "/healthz").headers


def test_hq_api_docs_can_be_turned_off(tmp_path):
    from hq.testing import running_hq

    with running_hq(tmp_path / "off", api_docs=False) as hq:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(hq.url + path, timeout=10).status_code == 404, path
        assert httpx.get(hq.url + "/v1/keys", timeout=10).status_code == 200
