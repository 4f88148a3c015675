"""Every deploy path under failure (issue 23), on the real engine with this tree's images.

The session's shared kit stack (tests/e2e/conftest.py, `shared_stack`): HQ in a
container, a site launched by `kitctl up`. The steps run in file order and share it.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from kitctl.deploy.engine_exec import run_in
from tests.deploy.stack import LOGO_PNG, issue_test_licence
from tests.support.kit_stack import (
    SITE_SERVICES, SKU, Stack, card_keys, place_order, remove_tags, serving_again,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BROKEN = f"broken{uuid.uuid4().hex[:6]}"
CRASHING_STOREFRONT = """\
FROM kitctl/storefront:{tag}
CMD ["python", "-c", "raise SystemExit('storefront of the broken release')"]
"""


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Iterator[Stack]:
    yield shared_stack
    remove_tags(shared_stack, BROKEN)  # the broken release this module made
    serving_again(shared_stack)


def broken_release(s: Stack) -> None:
    """Every kit image at BROKEN, the same as now except a storefront that exits at once."""
    for service in ("db", "agent", "proxy", "hq"):
        s.client.images.get(f"kitctl/{service}:{s.tag}").tag(f"kitctl/{service}", BROKEN)
    with tempfile.TemporaryDirectory() as context:
        Path(context, "Dockerfile").write_text(CRASHING_STOREFRONT.format(tag=s.tag))
        s.client.images.build(path=context, tag=f"kitctl/storefront:{BROKEN}", rm=True)


class EventLog:
    """The engine's container events of the stack, streamed live while the block runs."""

    def __init__(self, stack: Stack) -> None:
        self.events: list[dict[str, Any]] = []
        self.stream = stack.client.events(decode=True, filters={
            "type": "container", "label": f"com.kitctl.site={stack.site_id}"})
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for event in self.stream:
            self.events.append(event)

    def __enter__(self) -> "EventLog":
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        time.sleep(1)  # the last events of the command reach the stream
        self.stream.close()
        self.thread.join(5)


def most_running_at_once(events: list[dict[str, Any]], service: str) -> tuple[int, int]:
    """(the most containers of `service` running at one moment, how many of them started) per the engine's log."""
    running: set[str] = set()
    started: set[str] = set()
    most = 0
    for event in events:
        if event["Actor"]["Attributes"].get("com.kitctl.service") != service:
            continue
        if event.get("Action") == "start":
            running.add(event["id"])
            started.add(event["id"])
            most = max(most, len(running))
        elif event.get("Action") == "die":
            running.discard(event["id"])
    return most, len(started)


def test_crashing_upgrade_rolls_back_one_db_at_a_time_and_orders_still_flow(stack: Stack) -> None:
    broken_release(stack)
    before = {service: stack.container(service).id for service in ("db", "storefront", "agent", "proxy")}
    compose_before = (stack.site_dir / "compose.yaml").read_text()
    since = time.time()
    with EventLog(stack) as log:  # live: the engine keeps only its last 256 events, probes of every stack included
        done = stack.kitctl("upgrade", "--to", BROKEN, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    events = log.events
    # the engine's log: never two databases on the data volume, never two agents on the metrics port
    seen = [(e.get("Action"), e["Actor"]["Attributes"].get("com.kitctl.service"), e["id"][:8]) for e in events
            if not e.get("Action", "").startswith("exec_")]
    assert most_running_at_once(events, "db") == (1, 2), f"{seen}\n{done.stdout}\n{done.stderr}"
    assert most_running_at_once(events, "agent") == (1, 2)
    assert most_running_at_once(events, "storefront")[1] >= 1  # the crashing one did start
    # every service on its previous container, running, and the last line says so
    assert {service: stack.container(service).id for service in before} == before
    assert all(stack.container(service).status == "running" for service in before)
    last = " ".join(done.stderr.split("error:")[-1].split())  # the closing line, as rich wrapped it
    assert "rolled back, every service as before" in last, done.stderr
    assert "agent previous container running (healthy)" in last and "db previous container running (healthy)" in last
    assert (stack.site_dir / "compose.yaml").read_text() == compose_before
    # each database stopped cleanly: the previous one, started again, recovers nothing
    logs = stack.container("db").logs(since=int(since)).decode()
    assert "not properly shut down" not in logs and "FATAL tini" not in logs, logs[-1500:]
    # an order placed right after is delivered, with no other command
    order, _ = place_order(stack.base)
    eventually(lambda: stack.psql(f"SELECT status FROM orders WHERE id = '{order}'") == ["delivered"], 90,
               what="order after the rollback delivered")



def test_a_failed_first_deploy_leaves_no_container_network_or_volume(stack: Stack, tmp_path: Path) -> None:
    from tests.support.postgres import free_port

    site_id = f"ff{uuid.uuid4().hex[:8]}"
    token, jwks = issue_test_licence(tmp_path / "hq", site_id, None)
    (tmp_path / "licence.jwt").write_text(token)
    (tmp_path / "hq-keys.json").write_text(json.dumps(jwks))
    site_dir = tmp_path / site_id
    done = stack.kitctl("up", "--licence", f"@{tmp_path / 'licence.jwt'}", "--hq-keys", str(tmp_path / "hq-keys.json"),
                        "--name", "首次失败", "--domain", "localhost", "--tls", "off", "--http-port", str(free_port()),
                        "--metrics-port", str(free_port()), "--image-tag", BROKEN, "--site-dir", str(site_dir),
                        check=False, site=False)
    try:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "storefront" in done.stderr and "removed (new in this deploy)" in " ".join(done.stderr.split())
        label = {"label": f"com.kitctl.site={site_id}"}
        assert stack.client.containers.list(all=True, filters=label) == []
        assert [n.name for n in stack.client.networks.list() if site_id in n.name] == []
        assert [v.name for v in stack.client.volumes.list() if site_id in v.name] == []
    finally:
        if (site_dir / "compose.yaml").exists():
            stack.kitctl("down", "--volumes", "--yes", "--site-dir", str(site_dir), check=False, site=False)

# -- 3. backup → down --volumes → restore: branding, card keys and the proxy's volume come back ----------
PROXY_VOLUME = "cd /data && find . -printf '%p %m %u:%g\\n' | sort && find . -type f | sort | xargs -r sha256sum"


def proxy_volume(stack: Stack) -> set[str]:
    """Path, mode, owner and content hash of what Caddy keeps for good: certificates, its CA, its identity."""
    done = run_in(stack.container("proxy"), ["sh", "-c", PROXY_VOLUME])
    assert done.exit_code == 0, done.output.decode()[-300:]
    return {line for line in done.stdout.decode().splitlines()
            if any(part in line for part in ("/certificates", "/pki", "instance.uuid"))}


def test_backup_down_volumes_restore_serves_branding_card_keys_and_the_proxy_volume(stack: Stack) -> None:
    order, _ = place_order(stack.base, "restore-pw-1")
    eventually(lambda: stack.psql(f"SELECT status FROM orders WHERE id = '{order}'") == ["delivered"], 90,
               what="order delivered")
    keys = card_keys(stack.base, order, "restore-pw-1")
    assert len(keys) == 1 and len(keys[0]) == 19
    # what the proxy keeps in its volume (its local CA, certificates): a CA key planted where Caddy keeps one
    # (not under certificates/, whose invalid files Caddy's storage cleaner deletes at start)
    done = run_in(stack.container("proxy"), ["sh", "-c", "mkdir -p /data/caddy/pki/authorities/e2e && "
                                             "umask 077 && echo key > /data/caddy/pki/authorities/e2e/root.key"])
    assert done.exit_code == 0, done.output.decode()
    volume_before = proxy_volume(stack)
    assert any("e2e/root.key 600 caddy:caddy" in line for line in volume_before)
    archive, identity = stack.root / "site.age", stack.root / "identity.txt"
    stack.kitctl("backup", "-o", str(archive), "--identity", str(identity))
    stack.kitctl("down", "--volumes", "--yes")
    assert not [v for v in stack.client.volumes.list() if stack.site_id in v.name]
    moved = stack.root / "restored" / stack.site_id
    shutil.move(str(stack.site_dir), str(stack.root / "before-restore"))  # as on a fresh host
    stack.site_dir = moved
    stack.kitctl("restore", str(archive), "--identity", str(identity))
    eventually(lambda: httpx.get(f"{stack.base}/p/{SKU}", timeout=3).status_code == 200, 120, what="shop back")
    for path in ("/branding/theme.css", "/branding/logo.png", "/"):
        assert httpx.get(stack.base + path, timeout=10).status_code == 200, path
    assert httpx.get(stack.base + "/branding/logo.png", timeout=10).content == LOGO_PNG
    assert card_keys(stack.base, order, "restore-pw-1") == keys
    assert volume_before <= proxy_volume(stack)


# -- 2. up --bundle with a licence that names a registry nobody answers at ---------------------------
class Listener:
    """A port on 127.0.0.1 that counts who connects (a registry asked would connect here)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def test_up_with_a_bundle_never_asks_the_registry_the_licence_names(stack: Stack, tmp_path: Path) -> None:
    from kitctl.images.bundle import verify_bundle
    from tests.support.postgres import free_port

    tag = f"bn{uuid.uuid4().hex[:6]}"
    for service in SITE_SERVICES:
        stack.client.images.get(f"kitctl/{service}:{stack.tag}").tag(f"kitctl/{service}", tag)
    listener = Listener()
    registry = f"127.0.0.1:{listener.port}"
    site_id = f"bn{uuid.uuid4().hex[:8]}"
    site_dir = tmp_path / site_id
    bundle = tmp_path / "site.bundle"
    try:
        stack.kitctl("bundle", "save", "-o", str(bundle), "--version", tag, site=False)
        assert sorted(e.service for e in verify_bundle(bundle)) == sorted(SITE_SERVICES)  # not HQ's server
        for service in SITE_SERVICES:  # the engine has them only from the bundle now
            stack.client.images.remove(f"kitctl/{service}:{tag}", noprune=True)
        token, jwks = issue_test_licence(tmp_path / "hq", site_id, {"url": registry, "username": "u", "password": "p"})
        (tmp_path / "licence.jwt").write_text(token)
        (tmp_path / "hq-keys.json").write_text(json.dumps(jwks))
        http_port = free_port()
        done = stack.kitctl("up", "--licence", f"@{tmp_path / 'licence.jwt'}", "--hq-keys", str(tmp_path / "hq-keys.json"),
                            "--name", "离线安装", "--domain", "localhost", "--tls", "off", "--http-port", str(http_port),
                            "--metrics-port", str(free_port()), "--image-tag", tag, "--bundle", str(bundle),
                            "--site-dir", str(site_dir), site=False)
        assert f"{registry}/kitctl/storefront:{tag}" in (site_dir / "compose.yaml").read_text()
        assert "up done" in done.stdout and "pull" not in done.stdout.lower()
        assert listener.connections == 0
        assert httpx.get(f"http://127.0.0.1:{http_port}/", timeout=10).status_code == 200
    finally:
        listener.close()
        if (site_dir / "compose.yaml").exists():
            stack.kitctl("down", "--volumes", "--yes", "--site-dir", str(site_dir), check=False, site=False)
        for service in SITE_SERVICES:
            for ref in (f"kitctl/{service}:{tag}", f"{registry}/kitctl/{service}:{tag}"):
                try:
                    stack.client.images.remove(ref, noprune=True)
                except Exception:  # noqa: BLE001 - not there: nothing to remove
                    pass
