"""The contract works from outside: a separately packaged plugin, pip-installed from its folder."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kitcore.licence.tiers import TIERS
from plugins.host import PluginHost
from tests.plugins.helpers import checkout_ctx, event, place_order

EXAMPLE = Path(__file__).resolve().parent / "example_plugin"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory):
    """pip install --target a fresh folder (offline, no deps: kitctl is the running checkout)."""
    target = tmp_path_factory.mktemp("site-packages")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, text=True, cwd=build, timeout=300,
    )
    assert (target / "kitctl_example_referral").is_dir()
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("kitctl_example_referral", None)
    importlib.invalidate_caches()


def test_the_installed_example_is_discovered_by_entry_point_and_loads_on_flagship(installed_example, engine, tmp_path):
    host = PluginHost.load(TIERS["flagship"].features, where="storefront")
    assert "referral" in host.loaded, host.refused
    assert {"name": "referrer", "label": "Referred by", "required": False, "max_length": 40} in host.checkout_fields()
    adjustment, order_id = place_order(engine, host, checkout_ctx(fields={"referrer": "alice-01"}, hq_price_cents=1))
    assert order_id and adjustment["discount_cents"] == 100
    assert adjustment["extras"]["referral"] == {"referrer": "alice-01"}
    bad, none = place_order(engine, host, checkout_ctx(fields={"referrer": "alice; drop"}))
    assert bad["errors"] == {"referrer": "use letters, digits and '-' only"} and none is None


def test_the_example_is_refused_by_tier_and_listed_with_its_origin(installed_example, site_dir):
    from kitctl.siteplugins import SiteLicence, list_plugins

    host = PluginHost.load(TIERS["pro"].features, tier="pro")
    assert host.refused["referral"] == "referral needs feature 'custom-plugins' (tier flagship or higher); this licence is pro"
    rows = {r["name"]: r for r in list_plugins(site_dir, SiteLicence("pro", TIERS["pro"].features))}
    assert rows["referral"]["origin"] == "kitctl-example-referral 0.2.0" and not rows["referral"]["licensed"]


def test_the_examples_stack_fragment_and_event_hook(installed_example, site_dir, tmp_path):
    from kitctl.siteplugins import SiteLicence, configure

    ledger = tmp_path / "ledger.jsonl"
    configure(site_dir, "referral", [f"ledger_file={ledger}", "partner_api_token=tok-123"], SiteLicence("flagship", TIERS["flagship"].features))
    host = PluginHost.load(TIERS["flagship"].features, config_dir=site_dir, where="kitctl")
    fragments = host.stack_fragments()
    from kitctl.siteplugins import stack_fragments_for_site

    assert stack_fragments_for_site(site_dir, SiteLicence("flagship", TIERS["flagship"].features)) == fragments
    assert stack_fragments_for_site(site_dir, SiteLicence("pro", TIERS["pro"].features)) == {"services": {}, "volumes": {}, "env": {}}
    assert fragments["services"]["referral-sync"]["image"] == "kitctl/base:bookworm"
    assert fragments["env"]["storefront"] == {"PLUGIN_REFERRAL_ENABLED": "1"}
    assert fragments["volumes"] == {"referral-data": {}}
    assert fragments["services"]["referral-sync"]["volumes"] == [
        {"type": "volume", "source": "referral-data", "target": "/srv/referral", "read_only": False}]
    assert fragments["services"]["referral-sync"]["depends_on"] == {"db": {"condition": "service_started"}}
    host.emit("order_created", event("order_created", order_id="B7", extras={"referral": {"referrer": "bob"}}))
    assert host.flush(5)
    assert json.loads(ledger.read_text()) == {"order_id": "B7", "referrer": "bob"}
