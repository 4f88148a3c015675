"""What the licence allows: plugins and categories, refused with the tier that would."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kitcore.errors import InvalidInput, LicenceError
from kitcore.licence.keys import HQKeyStore
from kitctl.render import render_site
from kitcore.sitedir import SiteDir


def test_plugins_in_the_licence_are_enabled(flags):
    result = render_site({**flags, "plugins": ["coupons", "notify"]})
    config = json.loads((Path(flags["site_dir"]) / "site.json").read_text())
    assert config["plugins"] == ["coupons", "notify"]
    assert result.rendered.compose["services"]["storefront"]["environment"]["KIT_PLUGINS"] == "coupons,notify"


@pytest.mark.parametrize("tier, plugin, needed", [("basic", "coupons", "pro"), ("pro", "regional-pricing", "flagship"),
                                                  ("basic", "regional-pricing", "flagship")])
def test_a_plugin_the_licence_lacks_is_refused_naming_the_tier(flags, make_licence, tier, plugin, needed):
    lic = make_licence(tier, ("game",))
    with pytest.raises(InvalidInput) as err:
        render_site({**flags, "licence": f"@{lic}", "plugins": [plugin]})
    assert f"(tier {needed} or higher); this licence is {tier}" in str(err.value)
    assert not Path(flags["site_dir"]).exists()


def test_an_unknown_plugin_is_refused(flags):
    with pytest.raises(InvalidInput, match="unknown plugin 'bitcoin-miner'.*installed: coupons, notify, regional-pricing"):
        render_site({**flags, "plugins": ["bitcoin-miner"]})


def test_a_licence_feature_is_not_a_plugin_name(flags, make_licence):
    """`--plugin custom-plugins` passed (the flagship licence carries that feature) and wrote it as the
    storefront's enabled set, which switched every real plugin off."""
    lic = make_licence("flagship", ("game",))
    with pytest.raises(InvalidInput, match="unknown plugin 'custom-plugins'"):
        render_site({**flags, "licence": f"@{lic}", "plugins": ["custom-plugins"]})
    assert not Path(flags["site_dir"]).exists()


def test_a_third_party_plugin_is_selected_by_its_name_under_its_own_feature():
    from types import SimpleNamespace

    from kitctl.site.resolve import check_plugins
    from plugins.contract import Manifest, Plugin
    from tests.plugins.fixture_plugins import source

    class Loyalty(Plugin):
        manifest = Manifest(name="loyalty-points", version="1.0", feature="loyalty")

    granted = SimpleNamespace(tier="pro", features=("storefront", "coupons", "loyalty"))
    assert check_plugins(["loyalty-points"], granted, [source(Loyalty)]) == ("loyalty-points",)
    lacking = SimpleNamespace(tier="flagship", features=("storefront", "coupons"))
    with pytest.raises(InvalidInput, match="loyalty-points needs feature 'loyalty', which no tier includes"):
        check_plugins(["loyalty-points"], lacking, [source(Loyalty)])


def test_a_licence_issued_without_a_feature_its_tier_carries_says_so(flags, make_licence):
    """A pro licence HQ issued with its own feature list: 'this licence is pro' named the tier it already is."""
    lic = make_licence("pro", ("game",), features=["storefront", "standard-theme", "notify"])
    with pytest.raises(InvalidInput) as err:
        render_site({**flags, "licence": f"@{lic}", "plugins": ["coupons"]})
    assert "coupons needs feature 'coupons'; this pro licence was issued without it (ask HQ to add it)" in str(err.value)


def test_categories_default_to_the_licence_and_may_be_narrowed(flags):
    render_site(flags)
    site = Path(flags["site_dir"])
    assert json.loads(SiteDir(site).site_json.read_text())["categories"] == ["game", "phone"]
    render_site({**flags, "categories": ["phone"]})
    assert json.loads(SiteDir(site).site_json.read_text())["categories"] == ["phone"]


def test_a_category_outside_the_licence_is_refused_naming_the_tier(flags, make_licence):
    lic = make_licence("basic", ("game", "phone"))
    with pytest.raises(InvalidInput) as err:
        render_site({**flags, "licence": f"@{lic}", "categories": ["game", "video"]})
    message = str(err.value)
    assert "'video' is not in this basic licence" in message and "pro tier" in message


def test_an_unknown_category_is_refused(flags):
    with pytest.raises(InvalidInput, match="unknown category 'drugs'"):
        render_site({**flags, "categories": ["drugs"]})


def test_a_licence_signed_by_another_hq_is_refused(flags, tmp_path):
    from kitcore.licence.token import issue_licence

    rogue = HQKeyStore(tmp_path / "rogue")
    rogue.init()
    token = issue_licence(rogue, "xingchen", "flagship", ["game"], 365, "http://127.0.0.1:8600")
    with pytest.raises(LicenceError):
        render_site({**flags, "licence": token})
    assert not Path(flags["site_dir"]).exists()


def test_an_expired_licence_beyond_grace_is_refused(flags, make_licence):
    lic = make_licence("pro", ("game",), days=1, now=int(time.time()) - 60 * 86400)
    with pytest.raises(LicenceError, match="expired"):
        render_site({**flags, "licence": f"@{lic}"})


def test_missing_licence_keys_name_and_domain_are_named(flags):
    for field, words in (("licence", "missing --licence"), ("hq_keys", "--hq-keys"), ("name", "missing --name"),
                         ("domain", "missing --domain")):
        with pytest.raises(InvalidInput, match=words):
            render_site({**flags, field: None})
