"""Render reads the `com.kitctl.plugins` label of real images on the real engine (issue 28).

Two tiny images (no layers: FROM scratch and the kit Dockerfile's own label lines) stand in for a
storefront and an agent built with `kitctl images build --plugin-wheel`, under a tag of this module's
own, removed afterwards. tests/plugins/test_plugins_thirdparty_e2e.py does the same with the real images.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from kitcore.sitedir import SiteDir
from kitctl.images.plugin_wheels import PluginWheel, label_value
from kitctl.render import render_site
from tests.conftest import require

pytestmark = pytest.mark.e2e

DOCKERFILE = b'FROM scratch\nARG KIT_PLUGINS=[]\nLABEL com.kitctl.plugins="${KIT_PLUGINS}"\n'
WHEEL = PluginWheel(Path("kitctl_loyalty_points-0.3.0-py3-none-any.whl"), "kitctl_loyalty_points", "0.3.0", "cd" * 32,
                    ({"name": "loyalty-points", "version": "0.3.0", "feature": "loyalty-points", "api_version": 2},))


@pytest.fixture(scope="module")
def tag() -> Iterator[str]:
    from kitctl.engine import connect

    try:
        client = connect(timeout=60)
    except Exception as exc:  # noqa: BLE001
        require(False, f"Docker engine not reachable: {exc}")
    tag = f"0.0.0-lbl{uuid.uuid4().hex[:8]}"
    try:
        for service in ("storefront", "agent"):
            list(client.api.build(fileobj=io.BytesIO(DOCKERFILE), tag=f"kitctl/{service}:{tag}", rm=True,
                                  buildargs={"KIT_PLUGINS": label_value([WHEEL])}, decode=True))
        yield tag
    finally:
        for service in ("storefront", "agent"):
            try:
                client.images.remove(f"kitctl/{service}:{tag}")
            except Exception:  # noqa: BLE001 - never built
                pass
        client.close()


def test_render_selects_a_plugin_only_the_images_carry_and_records_its_wheel(flags: dict[str, Any], make_licence,
                                                                             tag: str) -> None:
    licence = make_licence("pro", features=["storefront", "standard-theme", "coupons", "loyalty-points"])
    result = render_site({**flags, "licence": f"@{licence}", "image_tag": tag, "plugins": ["loyalty-points"]})
    assert result.rendered.compose["services"]["agent"]["environment"]["KIT_PLUGINS"] == "loyalty-points"
    (record,) = json.loads(SiteDir(Path(flags["site_dir"])).lock_file.read_text())["images"]["plugins"]
    assert (record["name"], record["version"], record["sha256"], record["enabled"]) == \
           ("loyalty-points", "0.3.0", WHEEL.sha256, True)


def test_render_plugin_for_a_carried_plugin_the_licence_lacks_exits_2_naming_the_feature(flags: dict[str, Any], tag: str,
                                                                                          capsys) -> None:
    from kitctl.cli import run
    from tests.render.test_cli import argv

    assert run(["render", *argv(flags, image_tag=tag, plugins=["loyalty-points"])]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "plugin 'loyalty-points' is not allowed: loyalty-points needs feature 'loyalty-points'" in lines[0]
    assert not Path(flags["site_dir"]).exists()
    render_site({**flags, "image_tag": tag})  # without --plugin: rendered, the plugin recorded as not enabled
    (record,) = json.loads(SiteDir(Path(flags["site_dir"])).lock_file.read_text())["images"]["plugins"]
    assert record["enabled"] is False and "needs feature 'loyalty-points'" in record["refused"]
