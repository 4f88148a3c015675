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


@pytest.mark.parametrize("tier, plugin, needed", [("basic", "coupons", "pro"), ("pro", "custom-theme", "flagship"),
                                                  ("basic", "regional-pricing", "flagship")])
def test_a_plugin_the_licence_lacks_is_refused_naming_the_tier(flags, make_licence, tier, plugin, needed):
    lic = make_licence(tier, ("game",))
    with pytest.raises(InvalidInput) as err:
        render_site({**flags, "licence": f"@{lic}", "plugins": [plugin]})
    assert f"needs the {needed} tier" in str(err.value) and tier in str(err.value)
    assert not Path(flags["site_dir"]).exists()


def test_an_unknown_plugin_is_refused(flags):
    with pytest.raises(InvalidInput, match="unknown plugin 'bitcoin-miner'"):
        render_site({**flags, "plugins": ["bitcoin-miner"]})


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
