"""A plugin that adds a service, across a licence upgrade and downgrade, on a real Docker engine.

The rendered stack (kitctl/db, storefront, agent, proxy images) is deployed by
`kitctl up` with a basic licence; the example third-party plugin (pip-installed
from tests/plugins/example_plugin) is installed for kitctl. HQ's upgrade is
stored the way the agent stores it (the agent's own code, run in the agent
container, writes the token into site_state); then `kitctl status` must say a
redeploy is needed and `kitctl up` must start the plugin's container, healthy;
a downgrade the same way must remove it again and keep its volume.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.plugins.e2e_stack import SERVICES, Site, engine, images  # noqa: F401 - module fixtures used below
from tests.support.postgres import free_port
from tests.support.waiting import eventually
from kitcore.sitedir import SiteDir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parent / "example_plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The example plugin pip-installed into its own folder, which the kitctl processes get on PYTHONPATH."""
    target = tmp_path_factory.mktemp("plugin-site-packages")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, text=True, timeout=300,
                   cwd=tmp_path_factory.mktemp("build"))
    return target


@pytest.fixture(scope="module")
def site(tmp_path_factory, engine, images, plugin_path) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("plugin-sites"), plugin_path)
    yield s
    s.kitctl("down", "--volumes", "--yes", check=False)
    for volume in engine.volumes.list(filters={"label": f"com.docker.compose.project={s.project}"}):
        volume.remove(force=True)  # the plugin's volume: no longer in compose.yaml after the downgrade


def test_basic_tier_deploys_no_plugin_service_and_status_is_clean(site: Site, engine):
    token = site.licence("basic")
    (site.dir.parent / "basic.jwt").write_text(token)
    site.kitctl("up", "--licence", f"@{site.dir.parent / 'basic.jwt'}", "--hq-keys", str(site.jwks),
                "--name", "插件站", "--domain", "localhost", "--tls", "off", "--http-port", str(site.port),
                "--metrics-port", str(free_port()))
    # `up` returns once kitctl's own run of each healthcheck passed; the engine's status (what `status` shows)
    # agrees at its next probe, within the rendered 5 s interval
    eventually(lambda: {r["service"]: r["health"] for r in site.status()["services"]} == {s: "healthy" for s in SERVICES},
               8, 0.5, what="the engine's own status healthy")
    status = site.status()
    assert status["redeploy_needed"] is False and status["reason"] is None
    assert status["plugin_services"] == {"wanted": {}, "rendered": {}, "deployed": {}}
    assert "redeploy needed" not in site.kitctl("status").stdout


def test_an_upgrade_hq_sent_to_the_agent_makes_status_ask_for_a_redeploy(site: Site, engine):
    site.store_as_agent(engine, site.licence("flagship"))
    status = site.status()
    assert status["redeploy_needed"] is True and status["licence_from"] == "agent"
    assert status["plugin_services"]["wanted"] == {"referral-sync": "referral"}
    assert status["reason"] == "the licence HQ sent (tier flagship) adds referral-sync (referral): run `kitctl up`"
    table = site.kitctl("status").stdout
    assert "redeploy needed: the licence HQ sent (tier flagship) adds referral-sync (referral)" in table


def test_up_renders_again_and_starts_the_plugin_container_healthy(site: Site, engine):
    dry = site.kitctl("up", "--dry-run")
    assert "the flagship licence changes plugin services referral-sync: `kitctl up` renders again first" in dry.stdout
    assert "referral-sync" not in SiteDir(site.dir).compose.read_text()  # a dry run changes nothing
    done = site.kitctl("up")
    assert "rendered again for the flagship licence: plugin services referral-sync change" in done.stdout
    name = f"{site.project}_referral-sync_1"
    eventually(lambda: engine.containers.get(name).attrs["State"]["Health"]["Status"] == "healthy", 8, 0.5,
               what="the engine's own verdict on the plugin container")  # `up` gated on kitctl's probe of it
    container = engine.containers.get(name)
    assert container.status == "running"
    labels = container.labels
    assert labels["com.kitctl.plugin"] == "referral" and labels["com.docker.compose.project"] == site.project
    assert labels["com.docker.compose.service"] == "referral-sync" and len(labels["com.docker.compose.config-hash"]) == 64
    assert container.attrs["HostConfig"]["Privileged"] is False and not container.attrs["HostConfig"]["PortBindings"]
    storefront_env = engine.containers.get(f"{site.project}_storefront_1").attrs["Config"]["Env"]
    assert "PLUGIN_REFERRAL_ENABLED=1" in storefront_env
    assert SiteDir(site.dir).licence_token.read_text().count(".") == 2  # the site now holds HQ's newer token
    status = site.status()
    assert status["redeploy_needed"] is False and status["plugin_services"]["deployed"] == {"referral-sync": "referral"}
    assert "nothing to do" in site.kitctl("up").stdout  # and a second up changes nothing


def test_a_downgrade_asks_for_a_redeploy_and_up_removes_the_container_keeping_its_volume(site: Site, engine):
    site.store_as_agent(engine, site.licence("basic"))
    status = site.status()
    assert status["redeploy_needed"] is True
    assert status["reason"] == "the licence HQ sent (tier basic) removes referral-sync (referral): run `kitctl up`"
    done = site.kitctl("up")
    assert "removed (plugin off; volumes kept)" in done.stdout
    assert not engine.containers.list(all=True, filters={"name": f"{site.project}_referral-sync_1"})
    volumes = [v.name for v in engine.volumes.list(filters={"label": f"com.docker.compose.project={site.project}"})]
    assert f"{site.project}_referral-data" in volumes
    status = site.status()
    assert status["redeploy_needed"] is False and status["plugin_services"]["deployed"] == {}
    assert {r["service"] for r in status["services"]} == set(SERVICES)
