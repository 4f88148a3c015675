"""A third party's plugin wheel reaches the containers (issue 28, case 7), on the real Docker engine.

The wheel is built in the test from `kitctl plugins new`'s scaffold, outside the repository; `kitctl
images build --plugin-wheel` installs it into the storefront and agent images (under a version tag of this
module's own, removed afterwards, so the shared kitctl/<service>:<kit version> tags stay the plain kit's),
where the plugin host discovers its entry point; the offline bundle records it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.plugins.e2e_stack import engine  # noqa: F401 - module fixture used below
from tests.plugins.scaffolded import scaffolded_wheel
from tests.support.cli import kitctl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DISCOVER = ("import json; from plugins.discovery import discover; from plugins.host import PluginHost; "
            "host = PluginHost.load(['loyalty-points'], where='agent'); "
            "print(json.dumps({'found': [s.origin for s in discover() if s.name == 'loyalty-points'], "
            "'loaded': host.loaded, 'refused': host.refused}))")


@pytest.fixture(scope="module")
def built(tmp_path_factory, engine) -> Iterator[dict[str, Any]]:  # noqa: F811 - the fixture imported above
    from kitcore import __version__

    wheel = scaffolded_wheel(tmp_path_factory.mktemp("third-party"))
    version = f"{__version__}-plg{uuid.uuid4().hex[:6]}"
    try:
        done = kitctl("images", "build", "--service", "storefront", "--service", "agent", "--version", version,
                      "--plugin-wheel", str(wheel.parent), "--json")
        yield {"version": version, "wheel": wheel, "images": json.loads(done.stdout)}
    finally:
        for service in ("storefront", "agent"):
            try:
                engine.images.remove(f"kitctl/{service}:{version}")
            except Exception:  # noqa: BLE001 - never built: nothing to remove
                pass


def test_images_build_installs_the_plugin_into_the_storefront_and_agent_images(built, engine) -> None:  # noqa: F811
    assert {image["service"]: image["plugins"] for image in built["images"]} == {
        "storefront": ["loyalty-points"], "agent": ["loyalty-points"]}
    for service in ("storefront", "agent"):
        tag = f"kitctl/{service}:{built['version']}"
        output = engine.containers.run(tag, ["python", "-c", DISCOVER], remove=True).decode()
        answer = json.loads(output.strip().splitlines()[-1])
        assert answer["found"] == ["kitctl-loyalty-points 0.1.0"] and answer["loaded"] == ["loyalty-points"]
        assert "loyalty-points" not in answer["refused"]
        (record,) = json.loads(engine.images.get(tag).labels["com.kitctl.plugins"])
        assert record["file"] == built["wheel"].name and record["plugins"][0]["feature"] == "loyalty-points"


def test_the_offline_bundle_carries_and_records_the_plugin(built, engine, tmp_path: Path) -> None:  # noqa: F811
    from kitctl.images.bundle import save_bundle, verify_bundle

    bundle = tmp_path / "site.tar"
    save_bundle(engine, bundle, built["version"], ["agent"])
    (entry,) = verify_bundle(bundle)
    assert [p["name"] for w in entry.plugins for p in w["plugins"]] == ["loyalty-points"]
    assert entry.plugins[0]["sha256"] == __import__("hashlib").sha256(built["wheel"].read_bytes()).hexdigest()
