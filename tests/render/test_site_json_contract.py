"""What render writes into site.json is what the storefront and the agent read."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kitcore.errors import InvalidInput
from kitcore.site import SiteConfig
from kitcore.sitedir import SiteDir
from kitctl.render import render_site
from kitctl.site.inputs import SiteInputs
from storefront.siteconfig import load_site_config


def test_storefront_reads_the_rendered_site_json(flags):
    result = render_site(flags)
    data = json.loads(SiteDir(result.site_dir).site_json.read_text())
    config = SiteConfig.model_validate(data)
    assert config.name == "星辰游戏"
    assert config.logo == "logo.png"  # the storefront builds /branding/logo.png from it
    assert (result.site_dir / "branding" / config.logo).is_file()
    assert config.site_id == data["site_id"] and config.locale == "zh-CN" and config.currency == "CNY"
    assert config.colours.primary.lower() == data["colours"]["primary"].lower()


def test_agent_reads_its_own_config_without_branding(flags, monkeypatch):
    from agent.settings import AgentSettings

    result = render_site(flags)
    monkeypatch.setenv("KIT_SITE_CONFIG", str(result.site_dir / "agent.json"))
    monkeypatch.setenv("KIT_DATABASE_URL", "sqlite:///unused.db")
    monkeypatch.setenv("KIT_LICENCE_FILE", str(SiteDir(result.site_dir).licence_token))
    monkeypatch.setenv("KIT_HQ_KEYS_FILE", str(SiteDir(result.site_dir).hq_keys))
    monkeypatch.setenv("KIT_SITE_KEY_FILE", str(result.site_dir / "secrets" / "site_key"))
    agent_view = AgentSettings().site_json()
    assert agent_view["site_id"] == json.loads(SiteDir(result.site_dir).site_json.read_text())["site_id"]
    assert "colours" not in agent_view and "name" not in agent_view  # branding changes leave the agent alone


def test_the_storefront_loader_accepts_the_site_json_render_writes(flags):
    result = render_site({**flags, "primary_colour": "#12ab9f", "accent_colour": "#000000"})
    config = load_site_config(SiteDir(result.site_dir).site_json)
    assert (config.colours.primary, config.colours.accent) == ("#12AB9F", "#000000")
    assert config.name == "星辰游戏" and config.domain == "商店.example.cn"


@pytest.mark.parametrize("colour", ["red", "#abc", "#12345", "#12345G", "#1234567", " #123456", "#123456;}"])
def test_a_colour_render_refuses_the_storefront_refuses_too(flags, tmp_path, colour):
    with pytest.raises(InvalidInput, match="--primary-color"):
        render_site({**flags, "primary_colour": colour})
    site_json = tmp_path / "site.json"
    site_json.write_text(json.dumps({"site_id": "x", "colours": {"primary": colour}}))
    with pytest.raises(ValidationError, match="#RRGGBB"):
        load_site_config(site_json)


def test_render_and_the_storefront_start_from_the_same_colours():
    fields, defaults = SiteInputs.model_fields, SiteConfig().colours
    assert (fields["primary_colour"].default, fields["accent_colour"].default) == (defaults.primary, defaults.accent)


def test_the_time_zone_is_a_render_input_written_to_site_json_and_recorded(flags):
    """Default Asia/Shanghai; a chosen zone reaches the storefront and the next render keeps it."""
    result = render_site(flags)
    site_json = SiteDir(result.site_dir).site_json
    assert load_site_config(site_json).time_zone == "Asia/Shanghai"
    render_site({**flags, "time_zone": "Europe/Berlin"})
    assert json.loads(site_json.read_text())["time_zone"] == "Europe/Berlin"
    assert load_site_config(site_json).time_zone == "Europe/Berlin"
    render_site({"site_dir": flags["site_dir"]})  # nothing given again: the recorded inputs
    assert load_site_config(site_json).time_zone == "Europe/Berlin"
