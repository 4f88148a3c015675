"""Plugin settings reach the running storefront and agent, on a real Docker engine with the kit's images.

`kitctl plugins config` stores a setting (plugins.toml) and a secret
(secrets/plugins/notify.json, 0600); `kitctl up` delivers both: inside each
container, as the service's own user, the plugin host loads them from
`$KIT_PLUGIN_CONFIG_DIR`, and the secret file is 0400 owned by that user. A
second `up` changes nothing; a settings change recreates the storefront and
the agent and nothing else. The secret never shows in output, files, logs or
container metadata.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Iterator

import pytest

from kitcore.sitedir import SiteDir
from kitctl.deploy.engine_exec import run_in
from tests.plugins.e2e_stack import SERVICES, Site, engine, images  # noqa: F401 - module fixtures used below
from tests.support.postgres import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECRET = f"whsec-{uuid.uuid4().hex}"
HOOK = "https://hooks.example.org/kit"
# Run in a container as its own user: the plugin host as that service builds it, and the secret file's owner and mode.
INSPECT = """
import hashlib, json, os, stat, sys
from pathlib import Path
where = sys.argv[1]
config_dir = Path(os.environ["KIT_PLUGIN_CONFIG_DIR"])
features = json.loads(Path("/etc/kit/site.json").read_text())["licence"]["features"] if where == "storefront" else None
if where == "storefront":
    from storefront.plugin_adapter import load_host
    from storefront.settings import StorefrontSettings
    settings = StorefrontSettings()
    host = load_host(features, settings.plugin_choice(), settings.plugin_config_dir)
else:
    from agent.plugin_events import load_host
    derived = Path(os.environ["KIT_SITE_CONFIG"]).parent / "plugins"  # where agent.runner looks
    assert derived == config_dir, (derived, config_dir)
    host = load_host(sys.argv[2].split(","), derived)
notify = host.plugin("notify").settings
secret = config_dir / "secrets" / "plugins" / "notify.json"
info = secret.stat()
try:
    open(config_dir / "plugins.toml", "a").close()
    choice_writable = True
except OSError:
    choice_writable = False
print(json.dumps({
    "uid": os.getuid(), "loaded": host.loaded, "owner": [info.st_uid, info.st_gid], "mode": stat.S_IMODE(info.st_mode),
    "webhook_url": notify.webhook_url, "retries": notify.retries, "choice_writable": choice_writable,
    "secret_sha256": hashlib.sha256(notify.webhook_secret.get_secret_value().encode()).hexdigest(),
    "coupon_label": host.plugin("coupons").settings.field_label,
}))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, engine, images) -> Iterator[Site]:
    """A pro site (coupons, notify) on its own image tag, so images rebuilt meanwhile by others change nothing here."""
    from kitcore import __version__

    s = Site(tmp_path_factory.mktemp("plugin-settings"), prefix="pcf")
    s.tag = s.project
    for service in SERVICES:
        engine.images.get(f"kitctl/{service}:{__version__}").tag(f"kitctl/{service}", s.tag)
    yield s
    s.kitctl("down", "--volumes", "--yes", check=False)
    for volume in engine.volumes.list(filters={"label": f"com.docker.compose.project={s.project}"}):
        volume.remove(force=True)
    for service in SERVICES:
        engine.images.remove(f"kitctl/{service}:{s.tag}", noprune=True)


def container_ids(engine: Any, site: Site) -> dict[str, str]:
    found = engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={site.project}"})
    return {c.labels["com.docker.compose.service"]: c.id for c in found}


def inspect(engine: Any, site: Site, service: str) -> dict[str, Any]:
    container = engine.containers.get(f"{site.project}_{service}_1")
    argv = ["/opt/kit/bin/python", "-c", INSPECT, service, "storefront,coupons,notify"]
    done = run_in(container, argv)  # as the image's user, like the service itself
    assert done.exit_code == 0, done.output.decode()[-800:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def no_secret_anywhere(engine: Any, site: Site, *outputs: str) -> None:
    for text in outputs:
        assert SECRET not in text
    for name in ("compose.yaml", "kitctl.lock", "plugins.toml"):
        assert SECRET not in (site.dir / name).read_text(), name
    for service in ("storefront", "agent"):
        container = engine.containers.get(f"{site.project}_{service}_1")
        assert SECRET not in json.dumps(container.attrs) and SECRET not in container.logs().decode(errors="replace")


def test_settings_and_secrets_reach_both_services_as_their_own_user(site: Site, engine):
    token = site.dir.parent / "pro.jwt"
    token.write_text(site.licence("pro"))
    site.kitctl("up", "--licence", f"@{token}", "--hq-keys", str(site.jwks), "--name", "设置站", "--domain", "localhost",
                "--tls", "off", "--http-port", str(site.port), "--metrics-port", str(free_port()), "--image-tag", site.tag)
    assert SiteDir(site.dir).plugins_toml.is_file()  # render wrote the default the services bind
    first = container_ids(engine, site)
    configured = site.kitctl("plugins", "config", "notify", f"webhook_url={HOOK}", f"webhook_secret={SECRET}")
    assert "compose.yaml now names the new secrets file" in " ".join(configured.stdout.split())
    assert "run `kitctl up` to apply it" in " ".join(configured.stdout.split())
    labelled = site.kitctl("plugins", "config", "coupons", "field_label=优惠码")
    up = site.kitctl("up")
    after = container_ids(engine, site)
    assert {s for s in SERVICES if after[s] != first[s]} == {"storefront", "agent"}
    for service in ("storefront", "agent"):
        seen = inspect(engine, site, service)
        assert seen["uid"] == 10001 and seen["owner"] == [10001, 10001] and seen["mode"] == 0o400
        assert {"coupons", "notify"} <= set(seen["loaded"])
        assert seen["webhook_url"] == HOOK and seen["coupon_label"] == "优惠码" and seen["retries"] == 3
        assert seen["secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
        assert seen["choice_writable"] is False  # plugins.toml is bound read-only
    no_secret_anywhere(engine, site, configured.stdout + configured.stderr, labelled.stdout, up.stdout + up.stderr)


def test_a_second_up_changes_nothing(site: Site, engine):
    before = container_ids(engine, site)
    assert "nothing to do" in site.kitctl("up").stdout
    assert container_ids(engine, site) == before


def test_a_settings_change_recreates_storefront_and_agent_only(site: Site, engine):
    before = container_ids(engine, site)
    changed = site.kitctl("plugins", "config", "notify", "retries=1")
    assert "saved; run `kitctl up` to apply it" in " ".join(changed.stdout.split())
    site.kitctl("up")
    after = container_ids(engine, site)
    assert {s for s in SERVICES if after[s] != before[s]} == {"storefront", "agent"}
    for service in ("storefront", "agent"):
        seen = inspect(engine, site, service)
        assert seen["retries"] == 1 and seen["secret_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()
    no_secret_anywhere(engine, site, changed.stdout + changed.stderr)
