"""A third party's plugin from scaffold to the shop (issue 28, case 7 and "what it must show"), on the real engine.

The wheel is built in the test from `kitctl plugins new`'s scaffold, outside the repository; `kitctl
images build --plugin-wheel` installs it into the storefront and agent images (under a version tag of this
module's own, removed afterwards, so the shared kitctl/<service>:<kit version> tags stay the plain kit's),
where the plugin host discovers its entry point; the offline bundle records it. Then HQ (in its container)
registers the plugin's feature and licences a site with it, `kitctl up --image-tag … --plugin loyalty-points`
deploys those images (the run's registry storage plus this module's two images), selecting the plugin by
name from the images' label though this host's kitctl lacks it, and kitctl.lock records its wheel; a
browser sees the plugin's line on the product page in both locales; a delivered order is credited in the
plugin's own table; when HQ takes the feature away, the line goes as soon as the site's licence says so
and the shop stays.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from kitctl.deploy.engine_exec import run_in
from tests.conftest import require
from tests.plugins.e2e_stack import engine  # noqa: F401 - module fixture used below
from tests.plugins.scaffolded import scaffolded_wheel
from tests.support.browser import CHROMIUM, chromium
from tests.support.cli import kitctl
from tests.support.postgres import free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

SKU, PRICE_YUAN = "game-steam-100", 93  # HQ's price of the demo catalog's ¥100 Steam card; no markup rule
FEATURES = ["storefront", "standard-theme"]  # the basic tier's
CREDITS = ("import os; from pathlib import Path; from sqlalchemy import text; from sitedb.engine import make_engine; "
           "e = make_engine(Path(os.environ['KIT_DATABASE_URL_FILE']).read_text().strip()); "
           "import json; print(json.dumps([list(r) for r in e.connect().execute(text("
           "'SELECT order_id, points FROM plugin_loyalty_points_credits ORDER BY order_id'))]))")

FEATURES_NOW = ("import os, json; from pathlib import Path; from sqlalchemy import select; "
                "from sitedb.engine import make_engine; from sitedb.tables import site_state; "
                "e = make_engine(Path(os.environ['KIT_DATABASE_URL_FILE']).read_text().strip()); "
                "print(json.dumps(e.connect().execute(select(site_state.c.features)).scalar_one()))")
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


# ------------------------------------------------------------------ the deployed shop
@pytest.fixture(scope="module")
def site(tmp_path_factory, built, engine) -> Iterator[Any]:  # noqa: F811
    """HQ registers the feature and issues the licence with it; the site runs this module's images."""
    from demo.services import services

    require(CHROMIUM.exists(), "Debian chromium is not installed")
    try:
        services("start", "all")
    except Exception as exc:  # noqa: BLE001
        require(False, f"services did not start: {exc}")
    demo = _demo(tmp_path_factory.mktemp("thirdparty-site"))
    extra_tags = [f"kitctl/{s}:{built['version']}" for s in ("db", "proxy")]
    try:
        _licence_with_registered_feature(demo)
        _start_hq_and_registry(demo, engine, built["version"])
        from demo.stack import up_args

        # selected by name though only the images carry it (this host's kitctl has no loyalty-points)
        kitctl(*up_args(demo), "--image-tag", built["version"], "--plugin", "loyalty-points")
        yield demo
    finally:
        from demo.stack import demo_down

        demo_down(demo)
        pulled = [t for i in engine.images.list() for t in i.tags if t.startswith(f"{demo.registry}/")]
        for tag in extra_tags + pulled:
            try:
                engine.images.remove(tag, noprune=True)
            except Exception:  # noqa: BLE001 - never tagged
                pass


def _demo(root: Path) -> Any:
    from demo.stack import Demo

    suffix = uuid.uuid4().hex[:6]
    return Demo(root=root, site_id=f"plg-{suffix}", network=f"kitctl-e2e-{suffix}", hq_container=f"kitctl-e2e-hq-{suffix}",
                hq_port=free_port(), http_port=free_port(), https_port=free_port(), metrics_port=free_port(),
                heartbeat_seconds=2, registry=f"127.0.0.1:{free_port()}")


def _licence_with_registered_feature(demo: Any) -> None:
    from demo.stack import open_hq
    from hq import features, licences
    from kitcore.licence.keys import write_private

    demo.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    hq = open_hq(demo)
    try:
        features.register(hq, "e2e", "loyalty-points", "Points per yuan", "Acme")
        issued = licences.issue(hq, "e2e", demo.site_id, "basic", ["game", "phone"], 30,
                                features=[*FEATURES, "loyalty-points"])
        write_private(demo.licence_path, str(issued["token"]).encode())
    finally:
        hq.close()


def _start_hq_and_registry(demo: Any, client: Any, version: str) -> None:
    """The demo's steps with the run's registry storage, plus this module's images pushed under `version`."""
    from demo.registry import registry_dir
    from demo.services import registry_admin
    from demo.stack import point_registry_at_hq, prepare_hq_state, start_hq_container
    from kitcore import __version__
    from kitctl.images.registry import checked_credentials, push_images
    from tests.support.demo_stack import registry_storage

    shutil.copytree(registry_storage(), registry_dir(demo.root) / "data", copy_function=os.link)
    prepare_hq_state(demo)  # keys, operator, catalog, card keys (the licence is already there)
    point_registry_at_hq(demo)
    for service in ("db", "proxy"):  # the plain kit's, under the tag the site runs
        client.images.get(f"kitctl/{service}:{__version__}").tag(f"kitctl/{service}", version)
    pushed = push_images(client, ["storefront", "agent", "db", "proxy"], version,
                         checked_credentials(demo.registry, *registry_admin()))
    for ref in pushed:
        client.images.remove(ref, noprune=True)
    start_hq_container(client, demo)


@pytest.fixture(scope="module")
def buyer(site) -> Iterator[Any]:
    with chromium() as browser:
        context = browser.new_context(ignore_https_errors=True, base_url=site.site_url)
        yield context.new_page()
        context.close()


def _line(buyer: Any, lang: str) -> tuple[list[str], str, int]:
    """The plugin's lines on the product page, read in a tab of its own (an order page left open in the
    buyer's tab reloads itself when its order's status changes, and could win over this visit)."""
    from tests.e2e.test_loop import visit

    page = buyer.context.new_page()
    try:
        visit(page, f"/p/{SKU}?lang={lang}")
        page.wait_for_selector(".price-big")
        return page.locator(".plugin-lines li[data-plugin=loyalty-points]").all_inner_texts(), \
            page.locator(".price-big").inner_text(), page.locator("#place-order").count()
    finally:
        page.close()


def test_up_selects_the_plugin_the_images_carry_and_the_lock_records_its_wheel(site, built) -> None:
    import hashlib

    from kitcore.sitedir import SiteDir
    from plugins.discovery import discover

    assert "loyalty-points" not in {s.name for s in discover()}  # only the images have it
    lock = json.loads(SiteDir(site.site_dir).lock_file.read_text())
    (record,) = lock["images"]["plugins"]
    assert lock["images"]["tag"] == built["version"] and lock["inputs"]["plugins"] == ["loyalty-points"]
    assert (record["name"], record["version"], record["wheel"], record["enabled"]) == \
           ("loyalty-points", "0.1.0", built["wheel"].name, True)
    assert record["sha256"] == hashlib.sha256(built["wheel"].read_bytes()).hexdigest()


def test_the_plugins_line_shows_on_the_product_page_in_chinese_and_english(site, buyer) -> None:
    import httpx

    eventually(lambda: httpx.get(f"{site.site_url}/p/{SKU}", verify=False).status_code == 200, 120,
               what="catalog synced")
    assert _line(buyer, "zh-CN") == ([f"购买可得 {PRICE_YUAN} 积分"], f"¥{PRICE_YUAN}.00", 1)
    assert _line(buyer, "en") == ([f"Earn {PRICE_YUAN} points with this purchase"], f"¥{PRICE_YUAN}.00", 1)


def test_a_delivered_order_is_credited_in_the_plugins_own_table(site, buyer, engine) -> None:  # noqa: F811
    from tests.e2e.test_loop import checkout, order_status

    order_id = checkout(buyer, SKU, "points-buyer@example.cn")
    eventually(lambda: order_status(buyer, order_id) == "delivered", 90, what="order delivered")
    agent = engine.containers.get(f"kit-{site.site_id}_agent_1")

    def credited() -> list:
        done = run_in(agent, ["/opt/kit/bin/python", "-c", CREDITS])
        assert done.exit_code == 0, done.output.decode()[-500:]
        return json.loads(done.stdout.decode().strip().splitlines()[-1])

    eventually(lambda: credited() == [[order_id, PRICE_YUAN]], 30, what="points credited")


def _site_features(site: Any, engine: Any) -> list[str]:  # noqa: F811
    """The licence features the agent recorded in the site database (what the storefront reads)."""
    agent = engine.containers.get(f"kit-{site.site_id}_agent_1")
    done = run_in(agent, ["/opt/kit/bin/python", "-c", FEATURES_NOW])
    assert done.exit_code == 0, done.output.decode()[-500:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def test_when_the_licence_loses_the_feature_the_line_goes_and_the_shop_stays(site, buyer, engine,  # noqa: F811
                                                                             monkeypatch) -> None:
    from demo.stack import HQ_UID, _chown_tree

    monkeypatch.setenv("KIT_HQ_PUBLIC_URL", site.hq_internal_url)  # the operator's tool, configured as HQ is
    monkeypatch.setenv("KIT_HQ_REGISTRY_URL", site.registry)
    try:
        kitctl("hq", "licence", "upgrade", site.site_id, "--features", ",".join(FEATURES), "--hq-dir", str(site.hq_dir))
    finally:
        _chown_tree(site.hq_dir, HQ_UID)  # HQ's container runs as its own user
    eventually(lambda: "loyalty-points" not in _site_features(site, engine), 60, what="the site's licence lost the feature")
    # at once: the page cache is keyed by the loaded plugins, so only the licence's one-second read cache is
    # left (a page visit itself takes a second or two on a busy machine)
    eventually(lambda: _line(buyer, "en")[0] == [], 5, every=0.25, what="plugin line gone")
    assert _line(buyer, "en") == ([], f"¥{PRICE_YUAN}.00", 1)  # the shop still sells it, without the line
    assert _line(buyer, "zh-CN") == ([], f"¥{PRICE_YUAN}.00", 1)
