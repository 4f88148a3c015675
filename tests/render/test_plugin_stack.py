"""Render merges the licensed, enabled plugins' stack fragments, through the stack's own checks.

The plugins are real `Plugin` classes run by the real host; only discovery is
replaced, so the test decides which plugins are installed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kitcore.errors import InvalidInput
from kitctl.render import load_compose, render_site
from kitctl.render.api import rerender_site
from kitctl.render.escape import RenderError
from kitctl.render.structure import check_structure
from plugins.contract import Manifest
from tests.plugins import fixture_plugins as fx
from kitcore.sitedir import SiteDir


class Broken(fx.StackPlugin):
    manifest = Manifest(name="broken", version="1.0", feature="coupons")

    def stack_fragment(self) -> dict[str, Any]:
        return {"services": {"broken": {"image": "kitctl/base:bookworm", "privileged": True}}}


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch):
    """install(*plugin classes): what discovery finds from now on."""

    def install(*classes: type) -> None:
        monkeypatch.setattr("plugins.host.discover", lambda: [fx.source(c) for c in classes])

    install(fx.StackPlugin)
    return install


def test_a_licensed_plugin_adds_its_service_volume_and_variable(flags, installed):
    result = render_site(flags)
    compose = load_compose(Path(flags["site_dir"]))
    worker = compose["services"]["stacker-worker"]
    assert worker["image"] == "kitctl/base:bookworm" and worker["command"] == ["sleep", "infinity"]
    assert worker["restart"] == "unless-stopped"
    assert worker["deploy"] == {"resources": {"limits": {"cpus": "0.50", "memory": "256M"}}}
    assert worker["labels"] == {"com.kitctl.site": "xingchen", "com.kitctl.service": "stacker-worker",
                                "com.kitctl.version": "0.1.0", "com.kitctl.plugin": "stacker"}
    assert compose["volumes"]["stacker-data"] == {}
    assert compose["services"]["storefront"]["environment"]["PLUGIN_STACKER_MODE"] == "on"
    assert compose["services"]["storefront"]["environment"]["KIT_BIND"] == "0.0.0.0:8000"  # the core's stay
    lock = json.loads((Path(flags["site_dir"]) / "kitctl.lock").read_text())
    assert lock["plugins"] == {"services": {"stacker-worker": "stacker"}, "volumes": {"stacker-data": "stacker"},
                               "env": {"storefront": ["PLUGIN_STACKER_MODE"]}}
    assert result.rendered.plugins.owners == {"stacker-worker": "stacker"}
    assert "stacker-worker" in lock["services"]


def test_the_merged_file_is_one_the_deploy_engine_and_compose_schema_accept(flags, installed):
    from kitctl.deploy.compose import load_project

    from .test_render import compose_validator

    render_site(flags)
    site = Path(flags["site_dir"])
    assert not list(compose_validator().iter_errors(load_compose(site)))
    project = load_project(site)
    worker = project.services["stacker-worker"]
    assert dict(worker.labels)["com.kitctl.plugin"] == "stacker" and worker.restart == "unless-stopped"


def test_basic_licence_or_a_disabled_plugin_adds_nothing(flags, installed, make_licence):
    site = Path(flags["site_dir"])
    render_site({**flags, "licence": f"@{make_licence('basic', ('game',))}"})
    assert set(load_compose(site)["services"]) == {"proxy", "storefront", "agent", "db"}
    assert json.loads(SiteDir(site).lock_file.read_text())["plugins"]["services"] == {}
    SiteDir(site).plugins_toml.write_text('disabled = ["stacker"]\n')
    render_site(flags)
    compose = load_compose(site)
    assert "stacker-worker" not in compose["services"] and "stacker-data" not in compose["volumes"]
    assert not [k for k in compose["services"]["storefront"]["environment"] if k.startswith("PLUGIN_")]


def test_plugin_images_come_from_the_licences_registry_like_the_core(flags, installed, make_licence):
    grant = {"url": "https://registry.hq.example.cn:5000", "username": "site", "password": "pw"}
    render_site({**flags, "licence": f"@{make_licence('pro', ('game', 'phone'), registry=grant)}"})
    services = load_compose(Path(flags["site_dir"]))["services"]
    assert services["storefront"]["image"] == "registry.hq.example.cn:5000/kitctl/storefront:0.1.0"
    assert services["stacker-worker"]["image"] == "registry.hq.example.cn:5000/kitctl/base:bookworm"


def test_a_plugin_that_breaks_a_rule_stops_the_render_in_one_line_and_writes_nothing(flags, installed):
    installed(fx.StackPlugin, Broken)
    with pytest.raises(InvalidInput) as refused:
        render_site(flags)
    assert str(refused.value) == ("plugin broken: service broken may not set privileged "
                                  "(switch it off with `kitctl plugins disable broken`)")
    assert not Path(flags["site_dir"]).exists()


@pytest.fixture
def rendered(flags, installed) -> tuple[dict[str, Any], Any]:
    result = render_site(flags)
    return copy.deepcopy(result.rendered.compose), result.rendered.plugins


TAMPERED = [
    (lambda d: d["services"]["stacker-worker"].update(privileged=True), "plugin stacker: service stacker-worker may not set privileged"),
    (lambda d: d["services"]["stacker-worker"].update(network_mode="host"), "may not set network_mode"),
    (lambda d: d["services"]["stacker-worker"].update(image="docker.io/evil/kitctl:1"), "must be kitctl/NAME[:TAG]"),
    (lambda d: d["services"]["stacker-worker"].update(image="kitctl/base"), "must be kitctl/NAME[:TAG]"),
    (lambda d: d["services"]["stacker-worker"].update(volumes=[{"type": "bind", "source": "/var/run/docker.sock",
                                                                "target": "/var/run/docker.sock"}]), "no Docker socket"),
    (lambda d: d["services"]["stacker-worker"].update(ports=["0.0.0.0:80:80"]), "127.0.0.1 only"),
    (lambda d: d["services"]["stacker-worker"].update(restart="no"), "must restart unless-stopped"),
    (lambda d: d["services"]["stacker-worker"]["deploy"]["resources"]["limits"].update(memory="64G"), "resource limits"),
    (lambda d: d["services"]["stacker-worker"]["labels"].update({"com.kitctl.plugin": "other"}), "unexpected labels"),
    (lambda d: d["services"]["agent"]["environment"].update(PLUGIN_STACKER_X="1"), "plugin variables no plugin was allowed"),
    (lambda d: d["services"].update(intruder={"image": "kitctl/base:bookworm"}), "unexpected services"),
    (lambda d: d["volumes"].update({"stacker-data": {"driver": "local", "driver_opts": {"device": "/"}}}), "not placed like"),
]


@pytest.mark.parametrize(("tamper", "message"), TAMPERED, ids=[m[:40] for _, m in TAMPERED])
def test_the_structure_check_applies_the_same_rules_to_the_rendered_document(rendered, tamper, message):
    doc, plugins = rendered
    check_structure(doc, plugins)  # as rendered: fine
    tamper(doc)
    with pytest.raises(RenderError) as refused:
        check_structure(doc, plugins)
    assert message in str(refused.value)


def test_without_the_plugin_record_a_plugin_service_is_refused(rendered):
    doc, _ = rendered
    with pytest.raises(RenderError, match="unexpected services"):
        check_structure(doc)


def test_up_renders_again_from_the_recorded_inputs_with_a_newer_licence(flags, installed, make_licence):
    site = Path(flags["site_dir"])
    render_site({**flags, "licence": f"@{make_licence('basic', ('game',))}"})
    before = json.loads(SiteDir(site).site_json.read_text())
    upgraded = make_licence("pro", ("game", "phone")).read_text()
    result = rerender_site(site, upgraded)
    assert result.changed and "stacker-worker" in load_compose(site)["services"]
    assert SiteDir(site).licence_token.read_text() == upgraded
    after = json.loads(SiteDir(site).site_json.read_text())
    assert {k: v for k, v in after.items() if k not in ("licence", "categories")} == \
           {k: v for k, v in before.items() if k not in ("licence", "categories")}
    assert after["licence"]["tier"] == "pro"
    assert not rerender_site(site).changed  # same licence, same inputs: nothing written


def test_a_render_from_an_older_licence_keeps_the_newer_one_the_site_holds(flags, installed, make_licence):
    older = make_licence("basic", ("game",))
    site = Path(flags["site_dir"])
    render_site({**flags, "licence": f"@{older}"})
    import time

    time.sleep(1.1)  # iat is in whole seconds
    newer = make_licence("pro", ("game", "phone")).read_text()
    rerender_site(site, newer)
    result = render_site({**flags, "licence": f"@{older}"})
    assert result.site.licence.claims.tier == "pro" and "stacker-worker" in load_compose(site)["services"]


def test_a_site_rendered_without_recorded_inputs_is_refused_in_one_line(flags, installed):
    site = Path(flags["site_dir"])
    render_site(flags)
    lock = json.loads(SiteDir(site).lock_file.read_text())
    del lock["inputs"]
    SiteDir(site).lock_file.write_text(json.dumps(lock))
    with pytest.raises(InvalidInput, match="rendered by an older kitctl"):
        rerender_site(site)


def test_a_lock_recording_the_earlier_colour_keys_renders_again_with_those_colours(flags, installed):
    """kitctl.lock files written before the colour settings were renamed keep their colours on `up`."""
    site = Path(flags["site_dir"])
    render_site({**flags, "primary_colour": "#123456"})
    lock = json.loads(SiteDir(site).lock_file.read_text())
    lock["inputs"]["primary_color"] = lock["inputs"].pop("primary_colour")
    lock["inputs"]["accent_color"] = "#ABCDEF"
    del lock["inputs"]["accent_colour"]
    SiteDir(site).lock_file.write_text(json.dumps(lock))
    rerender_site(site)
    colours = json.loads(SiteDir(site).site_json.read_text())["colours"]
    assert colours == {"primary": "#123456", "accent": "#ABCDEF"}
    assert json.loads(SiteDir(site).lock_file.read_text())["inputs"]["primary_colour"] == "#123456"
