"""What `kitctl status` and `up` decide about plugin services, without an engine (the e2e test has one)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kitctl.deploy.drift import PluginDrift, _fingerprint, effective_licence, wanted_services
from kitcore.licence.token import issue_licence
from tests.plugins import fixture_plugins as fx
from kitcore.sitedir import SiteDir


@pytest.fixture
def site(site_dir: Path, jwks_file: Path) -> Path:
    SiteDir(site_dir).hq_keys.write_text(jwks_file.read_text())
    SiteDir(site_dir).lock_file.write_text(json.dumps({"inputs": {"plugins": []}, "plugins": {"services": {}}}))
    return site_dir


def licence(store, tier: str, site: str = "xingchen") -> str:
    return issue_licence(store, site, tier, ["game"], 30, "http://127.0.0.1:8600")


def test_reasons_say_what_changes_and_what_to_run():
    same = PluginDrift({"stacker-worker": "stacker"}, {"stacker-worker": "stacker"}, {"stacker-worker": "stacker"}, "pro")
    assert not same.redeploy_needed and same.reason() is None and not same.rerender_needed
    up = PluginDrift({"stacker-worker": "stacker"}, {}, {}, "pro", "agent")
    assert up.redeploy_needed and up.rerender_needed
    assert up.reason() == "the licence HQ sent (tier pro) adds stacker-worker (stacker): run `kitctl up`"
    down = PluginDrift({}, {}, {"stacker-worker": "stacker"}, "basic")
    assert down.reason() == ("the site's licence and plugin choice (tier basic) removes stacker-worker (stacker): "
                             "run `kitctl up`")
    assert down.as_dict()["redeploy_needed"] is True and down.as_dict()["plugin_services"]["deployed"] == {"stacker-worker": "stacker"}
    broken = PluginDrift({}, {}, {"x": "y"}, error="plugin x: service x may not set privileged")
    assert not broken.redeploy_needed and broken.reason().startswith("cannot tell whether plugin services changed: plugin x")


def test_the_newest_licence_for_the_same_site_decides(site: Path, hq_store):
    SiteDir(site).licence_token.write_text(licence(hq_store, "basic"))
    assert effective_licence(site, None, None)[0].tier == "basic"
    time.sleep(1.1)  # iat is whole seconds
    newer = licence(hq_store, "pro")
    claims, source = effective_licence(site, newer, None)
    assert (claims.tier, source) == ("pro", "agent")
    assert effective_licence(site, licence(hq_store, "flagship", site="another"), None)[1] == "site"
    assert effective_licence(site, newer[:-4] + "AAAA", None)[1] == "site"  # does not verify: ignored
    SiteDir(site).licence_token.write_text(newer)
    assert effective_licence(site, newer, None)[1] == "site"


def test_wanted_services_follow_the_licence_and_the_sites_choice(site: Path, hq_store, monkeypatch):
    from kitcore.licence.keys import load_jwks
    from kitcore.licence.token import verify_licence

    monkeypatch.setattr("plugins.host.discover", lambda: [fx.source(fx.StackPlugin)])
    keys = load_jwks(SiteDir(site).hq_keys)
    pro, basic = (verify_licence(licence(hq_store, t), keys).claims for t in ("pro", "basic"))
    assert wanted_services(site, pro) == {"stacker-worker": "stacker"}
    assert wanted_services(site, basic) == {}
    SiteDir(site).plugins_toml.write_text('disabled = ["stacker"]\n')
    assert wanted_services(site, pro) == {}


def test_the_fingerprint_changes_with_every_input_of_the_plugin_services(site: Path):
    base = _fingerprint(site, None)
    assert _fingerprint(site, None) == base
    assert _fingerprint(site, "a.b.c") != base
    SiteDir(site).plugins_toml.write_text('disabled = ["notify"]\n')
    after_choice = _fingerprint(site, None)
    assert after_choice != base
    from plugins.site_config import write_secrets

    write_secrets(site, "notify", {"webhook_secret": "s"})
    assert _fingerprint(site, None) != after_choice


def test_a_check_that_found_nothing_to_do_is_reused_until_an_input_changes(site: Path, hq_store, monkeypatch):
    from kitctl.deploy.drift import _remember, decide

    SiteDir(site).licence_token.write_text(licence(hq_store, "pro"))
    lock = json.loads(SiteDir(site).lock_file.read_text())
    lock["plugins"]["services"] = {"stacker-worker": "stacker"}
    SiteDir(site).lock_file.write_text(json.dumps(lock))
    monkeypatch.setattr("plugins.host.discover", lambda: [])  # nothing installed: a full check wants nothing
    assert decide(site, None, None) == ({}, "pro", "site")
    _remember(site, {"fingerprint": _fingerprint(site, None), "tier": "pro", "licence_from": "site"})
    assert decide(site, None, None) == ({"stacker-worker": "stacker"}, "pro", "site")  # no plugin loaded at all
    SiteDir(site).plugins_toml.write_text("disabled = []\n")
    assert decide(site, None, None) == ({}, "pro", "site")


def test_switching_a_service_plugin_on_or_off_says_that_up_applies_it(site: Path):
    from kitcore.licence.tiers import TIERS
    from kitctl.siteplugins import SiteLicence, disable, enable

    pro = SiteLicence("pro", TIERS["pro"].features)
    sources = [fx.source(fx.StackPlugin), fx.source(fx.FixedDiscountPlugin)]
    assert disable(site, "stacker", pro, sources) == \
        "stacker disabled; run `kitctl up` to remove stacker-worker (its volumes are kept)"
    assert enable(site, "stacker", pro, sources) == "stacker enabled; it adds stacker-worker: run `kitctl up` to start it"
    name = fx.FixedDiscountPlugin.manifest.name
    # code only: no service changes, but storefront and agent read plugins.toml at start
    assert disable(site, name, pro, sources) == f"{name} disabled; run `kitctl up` to apply it (it restarts the storefront and the agent)"


def test_kitctl_plugins_reads_the_licence_render_wrote_with_the_keys_it_pinned(site: Path, hq_store, monkeypatch):
    from kitcore.errors import InvalidInput
    from kitctl.siteplugins import read_site_licence

    monkeypatch.delenv("KITCTL_HQ_KEYS", raising=False)
    SiteDir(site).licence_token.write_text(licence(hq_store, "pro"))
    assert read_site_licence(site, None).tier == "pro"
    SiteDir(site).hq_keys.unlink()
    with pytest.raises(InvalidInput, match="no pinned HQ keys"):
        read_site_licence(site, None)


def test_the_host_tools_go_by_the_licence_hq_sent_the_agent(site: Path, hq_store, monkeypatch, capsys):
    """An upgrade at HQ reached the shop but `plugins list` said "not licensed" (issue 14, bad case 4)."""
    from kitctl.cli import run
    from kitctl.deploy.newest_licence import newest_licence

    SiteDir(site).licence_token.write_text(licence(hq_store, "basic"))
    SiteDir(site).compose.write_text("services:\n  db:\n    image: x\n  agent:\n    image: y\n")
    time.sleep(1.1)  # iat is whole seconds
    upgraded = licence(hq_store, "pro")
    monkeypatch.setattr("kitctl.deploy.drift.stored_licence_token", lambda client, project: upgraded)
    newest = newest_licence(site, None, client=object())
    assert (newest.verified.claims.tier, newest.source) == ("pro", "agent")
    assert newest.as_dict()["tier"] == "pro" and "coupons" in newest.as_dict()["features"]
    assert "tier pro" in newest.describe() and "sent by HQ" in newest.describe()
    monkeypatch.setattr("kitctl.engine.connect", lambda host: object())
    assert run(["plugins", "list", "--site-dir", str(site), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    coupons = [r for r in (rows if isinstance(rows, list) else rows.get("plugins", [])) if r.get("name") == "coupons"]
    assert coupons and coupons[0].get("licensed") is True, coupons
    forged = licence(hq_store, "flagship", site="another")
    monkeypatch.setattr("kitctl.deploy.drift.stored_licence_token", lambda client, project: forged)
    assert newest_licence(site, None, client=object()).verified.claims.tier == "basic"
