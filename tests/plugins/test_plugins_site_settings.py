"""`kitctl plugins config` on a rendered site: compose.yaml names a new secrets file, the operator hears `kitctl up`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kitcore.sitedir import SiteDir


SECRET = "hunter2-site-settings-5d2a"


@pytest.fixture
def rendered(site_dir: Path, jwks_file: Path, issue, tmp_path: Path) -> Path:
    from kitctl.render import render_site

    token = tmp_path / "pro.jwt"
    token.write_text(issue("pro"))
    render_site({"licence": f"@{token}", "hq_keys": str(jwks_file), "name": "设置站", "domain": "localhost",
                 "tls": "off", "site_dir": str(site_dir), "http_port": 18080, "metrics_port": 19464})
    return site_dir


def compose_secrets(site_dir: Path) -> dict:
    from kitctl.render.yamlload import load_yaml

    return load_yaml(SiteDir(site_dir).compose.read_text())["secrets"]


def test_the_first_secret_of_a_plugin_is_named_in_compose_yaml_and_up_is_asked_for(kit, rendered: Path):
    assert "plugin-notify" not in compose_secrets(rendered)
    code, out, err = kit("config", "notify", "webhook_url=https://hooks.example.org/kit", f"webhook_secret={SECRET}")
    assert code == 0, err
    assert "saved; compose.yaml now names the new secrets file; run `kitctl up` to apply it" in " ".join(out.split())
    assert compose_secrets(rendered)["plugin-notify"] == {"file": "./secrets/plugins/notify.json"}
    for name in ("compose.yaml", "kitctl.lock", "plugins.toml"):
        assert SECRET not in (rendered / name).read_text(), name
    assert SECRET not in out + err


def test_a_later_change_needs_no_render_only_up(kit, rendered: Path):
    assert kit("config", "notify", "webhook_url=https://hooks.example.org/kit", f"webhook_secret={SECRET}")[0] == 0
    before = SiteDir(rendered).compose.read_bytes()
    code, out, err = kit("config", "notify", "retries=1", "--json")
    assert code == 0 and json.loads(out)["retries"] == 1  # stdout stays JSON; the note goes to stderr
    assert "saved; run `kitctl up` to apply it" in " ".join(err.split()) and "now names" not in err
    assert SiteDir(rendered).compose.read_bytes() == before
    assert 'retries = 1' in SiteDir(rendered).plugins_toml.read_text()


def test_on_a_site_not_yet_rendered_it_only_saves(kit, site_dir: Path, issue):
    SiteDir(site_dir).licence_token.write_text(issue("pro"))
    code, out, err = kit("config", "coupons", "field_label=优惠码")
    assert code == 0, err
    assert "saved; run `kitctl up` to apply it" in " ".join(out.split())
    assert not SiteDir(site_dir).compose.exists()


def test_enabling_a_code_only_plugin_asks_for_up_too(kit, rendered: Path):
    code, out, _ = kit("disable", "notify")
    assert code == 0 and "notify disabled; run `kitctl up` to apply it" in " ".join(out.split())


def test_config_waits_for_a_render_holding_the_site_dir(rendered: Path, jwks_file: Path):
    """A render swapping the directory meanwhile would drop a secrets file written in between."""
    import threading

    from kitctl.siteplugins import configure, read_site_licence

    licence = read_site_licence(rendered, jwks_file)
    done = threading.Event()
    with SiteDir(rendered).locked():
        worker = threading.Thread(target=lambda: (configure(rendered, "notify", ["retries=2"], licence), done.set()))
        worker.start()
        assert not done.wait(0.5)  # blocked while the render holds the lock
    worker.join(10)
    assert done.is_set() and "retries = 2" in SiteDir(rendered).plugins_toml.read_text()
