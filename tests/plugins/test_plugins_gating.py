"""Only plugins the licence grants (and the site enabled) load; refusals are one clear line."""

from __future__ import annotations

import tomllib
from pathlib import Path

from kitcore.licence.keys import load_jwks
from kitcore.licence.tiers import TIERS
from kitcore.licence.token import verify_licence
from plugins.discovery import BUILTINS
from plugins.host import PluginHost
from plugins.site_config import SiteChoice, write_choice
from tests.plugins import fixture_plugins as fx
from kitcore.sitedir import SiteDir


def _host_for(token: str, jwks_file: Path, **kwargs) -> PluginHost:
    claims = verify_licence(token, load_jwks(jwks_file)).claims
    return PluginHost.load(claims.features, tier=claims.tier, **kwargs)


def test_basic_lacks_coupons_pro_has_it_flagship_has_everything(issue, jwks_file):
    basic = _host_for(issue("basic"), jwks_file)
    assert basic.loaded == []
    assert basic.refused["coupons"] == "coupons needs feature 'coupons' (tier pro or higher); this licence is basic"
    assert basic.refused["regional-pricing"].startswith("regional-pricing needs feature 'regional-pricing' (tier flagship")
    assert basic.checkout_fields() == []

    pro = _host_for(issue("pro"), jwks_file)
    assert pro.loaded == ["coupons", "notify"]
    assert "this licence is pro" in pro.refused["regional-pricing"]
    assert [f["name"] for f in pro.checkout_fields()] == ["coupon"]

    flagship = _host_for(issue("flagship"), jwks_file)
    assert flagship.loaded == ["coupons", "notify", "regional-pricing"]
    assert flagship.refused == {}


def test_upgrade_enables_and_downgrade_disables_by_reloading_with_new_features():
    before = PluginHost.load(TIERS["basic"].features)
    upgraded = PluginHost.load(TIERS["pro"].features)  # what the storefront does when site_state.features change
    downgraded = PluginHost.load(TIERS["basic"].features)
    assert "coupons" not in before.loaded and before.checkout_fields() == []
    assert "coupons" in upgraded.loaded and upgraded.checkout_fields()[0]["name"] == "coupon"
    assert "coupons" not in downgraded.loaded and downgraded.checkout_fields() == []


def test_site_can_disable_a_licensed_plugin_and_enabled_list_restricts(site_dir):
    write_choice(site_dir, SiteChoice(disabled=["notify"]))
    host = PluginHost.load(TIERS["pro"].features, config_dir=site_dir)
    assert host.loaded == ["coupons"]
    assert host.refused["notify"] == "notify is disabled by the site (kitctl plugins enable notify)"
    only = PluginHost.load(TIERS["flagship"].features, enabled=["notify"])
    assert only.loaded == ["notify"]
    assert only.refused["coupons"] == "coupons is not enabled here"


def test_a_broken_plugins_toml_switches_plugins_off_instead_of_crashing(site_dir):
    SiteDir(site_dir).plugins_toml.write_text("disabled = [unterminated")
    host = PluginHost.load(TIERS["pro"].features, config_dir=site_dir)
    assert host.loaded == []
    assert "plugins.toml could not be read" in host.refused["coupons"]


def test_invalid_stored_settings_refuse_that_plugin_only(site_dir, registry):
    SiteDir(site_dir).plugins_toml.write_text('[settings.notify]\nwebhook_url = "ftp://nope"\n')
    host = PluginHost.load(TIERS["pro"].features, config_dir=site_dir, registry=registry)
    assert host.loaded == ["coupons"]
    assert host.refused["notify"].startswith("notify settings are invalid: webhook_url:")


def test_kit_version_range_is_checked():
    host = PluginHost.load(["coupons"], sources=[fx.source(fx.FutureKitPlugin)])
    assert host.loaded == []
    assert host.refused["future"] == "future 9.0 supports kit >=9.0; this kit is 0.1.0"


def test_failed_import_and_non_plugins_are_refused_and_counted(registry):
    sources = [fx.failing_import_source(), fx.not_a_plugin_source(), fx.source(fx.FixedDiscountPlugin)]
    host = PluginHost.load(["coupons"], sources=sources, registry=registry)
    assert host.loaded == ["fixed-off"]
    assert host.refused["broken"] == "broken failed to import: ImportError: No module named 'missing_dependency'"
    assert "is not a valid plugin" in host.refused["stranger"]
    assert registry.get_sample_value("kitagent_plugin_errors_total", {"plugin": "broken", "hook": "import", "kind": "import"}) == 1.0


def test_a_plugin_whose_import_hangs_is_refused_at_the_deadline(registry, monkeypatch):
    import time

    import plugins.host as host_module

    monkeypatch.setattr(host_module, "IMPORT_TIMEOUT_SECONDS", 0.3)
    started = time.monotonic()
    host = PluginHost.load(["coupons"], sources=[fx.hanging_import_source(), fx.source(fx.FixedDiscountPlugin)], registry=registry)
    assert time.monotonic() - started < 2
    assert host.loaded == ["fixed-off"]
    assert host.refused["slow-import"] == "slow-import failed to import: HookTimeout: slow-import.import exceeded its 0.3s budget"
    assert registry.get_sample_value("kitagent_plugin_errors_total", {"plugin": "slow-import", "hook": "import", "kind": "timeout"}) == 1.0


def test_a_third_party_cannot_shadow_a_builtin_name():
    from plugins.discovery import Source, builtin_sources

    impostor = Source("coupons", "evil-dist 1.0", "evil:Coupons", lambda: fx.FixedDiscountPlugin)
    host = PluginHost.load(["coupons"], sources=builtin_sources() + [impostor])
    assert "coupons" in host.loaded
    assert any("entry point name differs" in r or "already taken" in r for r in host.refused.values())


def test_pyproject_registers_exactly_the_builtins():
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    table = tomllib.loads(pyproject.read_text())["project"]["entry-points"]["kitctl.plugins"]
    assert table == BUILTINS
