"""Third-party plugins that exist only in the site's images (issue 28): selected by name, gated by the
licence, recorded in kitctl.lock.

The engine is faked at one boundary, `kitctl.render.image_plugins.image_labels` (what the local engine
says each image's `com.kitctl.plugins` label is); tests/images/test_images_plugin_label_render.py reads the
label of real images on the real engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir
from kitctl.cli import run
from kitctl.images.plugin_wheels import PluginWheel, label_value
from kitctl.render import render_site
from tests.render.test_cli import argv

TAG = "0.1.0-plg"
SHA = "ab" * 32
WHEEL = PluginWheel(Path("kitctl_loyalty_points-0.2.0-py3-none-any.whl"), "kitctl_loyalty_points", "0.2.0", SHA,
                    ({"name": "loyalty-points", "version": "0.2.0", "feature": "loyalty-points", "api_version": 2},))
PRO = ["storefront", "standard-theme", "notify", "coupons"]


def images(monkeypatch: pytest.MonkeyPatch, label: str | None, *, services: tuple[str, ...] = ("storefront", "agent"),
           tag: str = TAG) -> list[list[str]]:
    """The local engine holds kitctl/<service>:<tag> with `label` (None: the engine is unreachable)."""
    from kitctl.render import image_plugins

    asked: list[list[str]] = []

    def labels(docker_host: str, refs: Any) -> dict[str, str] | None:
        refs = list(refs)
        asked.append(refs)
        if label is None:
            return None
        return {r: label for r in refs if any(r == f"kitctl/{s}:{tag}" for s in services)}

    monkeypatch.setattr(image_plugins, "image_labels", labels)
    return asked


def lock_images(flags: dict[str, Any]) -> dict[str, Any]:
    return json.loads(SiteDir(Path(flags["site_dir"])).lock_file.read_text())["images"]


@pytest.fixture
def loyal(flags: dict[str, Any], make_licence: Callable[..., Path]) -> dict[str, Any]:
    """Flags for a pro site whose licence carries the plugin's HQ-registered feature, on the images' tag."""
    return {**flags, "image_tag": TAG, "licence": f"@{make_licence('pro', features=[*PRO, 'loyalty-points'])}"}


def test_a_plugin_only_the_images_carry_is_selected_by_name(monkeypatch, loyal) -> None:
    """Refused before as `unknown plugin 'loyalty-points': no installed plugin has that name`: the host's
    kitctl does not have it, the images do."""
    images(monkeypatch, label_value([WHEEL]))
    result = render_site({**loyal, "plugins": ["loyalty-points"]})
    assert result.rendered.compose["services"]["storefront"]["environment"]["KIT_PLUGINS"] == "loyalty-points"
    assert json.loads(SiteDir(Path(loyal["site_dir"])).site_json.read_text())["plugins"] == ["loyalty-points"]


def test_the_lock_records_each_wheel_the_images_carry_and_that_it_is_enabled(monkeypatch, loyal) -> None:
    asked = images(monkeypatch, label_value([WHEEL]))
    render_site(loyal)
    assert lock_images(loyal) == {"tag": TAG, "plugins": [{
        "name": "loyalty-points", "version": "0.2.0", "feature": "loyalty-points", "api_version": 2,
        "wheel": WHEEL.path.name, "distribution": "kitctl_loyalty_points", "wheel_version": "0.2.0", "sha256": SHA,
        "enabled": True, "refused": None}]}
    assert f"kitctl/storefront:{TAG}" in asked[0] and f"kitctl/agent:{TAG}" in asked[0]


def test_a_carried_plugin_whose_feature_the_licence_lacks_is_recorded_as_not_enabled(monkeypatch, flags) -> None:
    images(monkeypatch, label_value([WHEEL]))
    render_site({**flags, "image_tag": TAG})
    (record,) = lock_images(flags)["plugins"]
    assert record["enabled"] is False and record["sha256"] == SHA
    assert "loyalty-points needs feature 'loyalty-points'" in record["refused"]


def test_render_plugin_for_a_carried_plugin_the_licence_lacks_exits_2_naming_the_feature(monkeypatch, flags, capsys) -> None:
    images(monkeypatch, label_value([WHEEL]))
    assert run(["render", *argv(flags, image_tag=TAG, plugins=["loyalty-points"])]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: plugin 'loyalty-points' is not allowed: ")
    assert "needs feature 'loyalty-points'" in lines[0]
    assert not Path(flags["site_dir"]).exists()


def test_a_name_neither_the_host_nor_the_images_carry_is_still_refused(monkeypatch, loyal) -> None:
    images(monkeypatch, label_value([WHEEL]))
    with pytest.raises(InvalidInput, match=r"unknown plugin 'loyalty'.*in the site's images: loyalty-points\)"):
        render_site({**loyal, "plugins": ["loyalty"]})


def test_a_plugin_in_one_of_the_two_images_only_is_not_carried(monkeypatch, loyal) -> None:
    """Its page slot runs in the storefront, its events in the agent: both images must have it."""
    images(monkeypatch, label_value([WHEEL]), services=("storefront",))
    with pytest.raises(InvalidInput, match="unknown plugin 'loyalty-points'"):
        render_site({**loyal, "plugins": ["loyalty-points"]})


def test_a_plugin_the_site_disabled_is_recorded_as_not_enabled(monkeypatch, loyal) -> None:
    images(monkeypatch, label_value([WHEEL]))
    site = Path(loyal["site_dir"])
    site.mkdir()
    (site / "plugins.toml").write_text('disabled = ["loyalty-points"]\n')
    render_site(loyal)
    (record,) = lock_images(loyal)["plugins"]
    assert record["enabled"] is False and record["refused"] == "loyalty-points is disabled in plugins.toml"


def test_without_the_engine_the_lock_of_the_same_tag_stands_in(monkeypatch, loyal) -> None:
    """A registry-only image or a remote engine: what the last render read from the label still counts."""
    images(monkeypatch, label_value([WHEEL]))
    render_site(loyal)
    images(monkeypatch, None)
    render_site({**loyal, "plugins": ["loyalty-points"]})
    assert [p["name"] for p in lock_images(loyal)["plugins"]] == ["loyalty-points"]
    with pytest.raises(InvalidInput, match="unknown plugin 'loyalty-points'"):  # other images: not known
        render_site({**loyal, "image_tag": "0.1.0-other", "plugins": ["loyalty-points"]})


def test_images_without_plugins_record_none(monkeypatch, flags) -> None:
    images(monkeypatch, "[]")
    render_site({**flags, "image_tag": TAG})
    assert lock_images(flags) == {"tag": TAG, "plugins": []}


def test_rendering_again_keeps_a_licensed_plugin_whose_feature_is_not_its_name(monkeypatch, flags, make_licence) -> None:
    """`kitctl up` after a licence change renders again from the lock; it kept the plugins whose *name* the
    licence listed as a feature, which dropped a licensed third-party plugin under a feature of its own."""
    from kitctl.render.api import rerender_site

    points = PluginWheel(WHEEL.path, WHEEL.distribution, WHEEL.version, SHA,
                         ({"name": "loyalty-points", "version": "0.2.0", "feature": "acme-loyalty", "api_version": 2},))
    images(monkeypatch, label_value([points]))
    granted = make_licence("pro", features=[*PRO, "acme-loyalty"])
    render_site({**flags, "image_tag": TAG, "licence": f"@{granted}", "plugins": ["loyalty-points", "coupons"]})
    site = Path(flags["site_dir"])
    renewed = make_licence("pro", features=[*PRO, "acme-loyalty"], days=200).read_text()
    result = rerender_site(site, renewed)
    assert result.site.plugins == ("coupons", "loyalty-points")
    taken = make_licence("pro", features=PRO, days=100).read_text()
    assert rerender_site(site, taken).site.plugins == ("coupons",)  # HQ took the feature: dropped, not refused
    (record,) = lock_images(flags)["plugins"]
    assert record["enabled"] is False and "needs feature 'acme-loyalty'" in record["refused"]
