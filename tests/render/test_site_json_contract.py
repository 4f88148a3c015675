"""What render writes into site.json is what the storefront and the agent read."""

from __future__ import annotations

import json

from kitcore.sitedir import SiteDir
from kitctl.render import render_site
from storefront.siteconfig import SiteConfig


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

