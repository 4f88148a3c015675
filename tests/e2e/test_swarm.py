"""`kitctl up --orchestrator swarm` on a real Swarm: a private engine of the test's own
(tests/support/swarm_engine.py), never the shared one.

In file order: 2 storefront tasks come up healthy and the shop answers through the proxy; a second `up`
changes nothing; a colour change rolls the storefront over with zero failed requests under a steady,
bounded load; a broken storefront image is rolled back by Swarm with the old tasks serving throughout; a
killed task is replaced. The engine and the site are session fixtures (tests/e2e/conftest.py): test_swarm_ops
goes on with them, and its first test takes the site down (and checks nothing of it is left) before restoring it.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from kitctl.deploy.engine_exec import run_in
from tests.support import swarm_engine
from tests.support.kit_stack import Stack

pytestmark = pytest.mark.e2e

SITE_SERVICES = swarm_engine.KIT_SERVICES
LOAD_SECONDS_MAX = 240  # the load stops when the rollout is done, or at this bound


@pytest.fixture(scope="module")
def engine(swarm_manager: swarm_engine.SwarmEngine) -> swarm_engine.SwarmEngine:
    return swarm_manager  # shared with test_swarm_ops (tests/e2e/conftest.py)


@pytest.fixture(scope="module")
def site(swarm_site: Stack) -> Stack:
    return swarm_site  # test_swarm_ops goes on with it (backup, down, restore, upgrade, a second node)


def up(s: Stack, engine: swarm_engine.SwarmEngine, *args: str, check: bool = True):
    return s.kitctl("up", "--orchestrator", "swarm", "--docker-host", engine.socket, *args, check=check)


def services(engine: swarm_engine.SwarmEngine, s: Stack) -> dict[str, Any]:
    return {svc.attrs["Spec"]["Labels"]["com.kitctl.service"]: svc
            for svc in engine.client().services.list(filters={"label": f"com.kitctl.site={s.site_id}"})}


def running_tasks(service: Any) -> list[dict[str, Any]]:
    return [t for t in service.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]


def shop(engine: swarm_engine.SwarmEngine, s: Stack) -> str:
    return f"http://{engine.addr}:{s.http_port}"


HOST = {"Host": "localhost"}  # the site's name: the proxy answers other names with an empty page


def get(engine: swarm_engine.SwarmEngine, s: Stack, path: str) -> httpx.Response:
    return httpx.get(f"{shop(engine, s)}{path}", headers=HOST, timeout=10)


def test_two_storefront_tasks_come_up_healthy_and_the_shop_answers(site: Stack, engine) -> None:
    done = up(site, engine, "--licence", f"@{site.root / 'licence.jwt'}", "--hq-keys", str(site.root / "hq-keys.json"),
              "--name", "蜂群站点", "--domain", "localhost", "--tls", "off", "--http-port", str(site.http_port),
              "--metrics-port", str(site.metrics_port), "--replicas", "2")
    assert "up done" in done.stdout, done.stdout
    found = services(engine, site)
    assert sorted(found) == sorted(SITE_SERVICES)
    assert len(running_tasks(found["storefront"])) == 2
    assert all(len(running_tasks(found[n])) == 1 for n in ("db", "agent", "proxy"))
    for service in found.values():  # the same site identity as the single-engine stack, and the stack's name
        labels = service.attrs["Spec"]["Labels"]
        assert labels["com.kitctl.site"] == site.site_id and labels["com.docker.stack.namespace"] == f"kit-{site.site_id}"
    page = get(engine, site, "/")
    assert page.status_code == 200 and "蜂群站点" in page.text
    assert json.loads((site.site_dir / "kitctl.lock").read_text())["inputs"]["replicas"] == 2  # recorded like the others


def test_a_second_up_changes_nothing(site: Stack, engine) -> None:
    before = {n: s.attrs["Version"]["Index"] for n, s in services(engine, site).items()}
    done = up(site, engine)
    assert "nothing to do" in done.stdout, done.stdout
    assert {n: s.attrs["Version"]["Index"] for n, s in services(engine, site).items()} == before
    plain = site.kitctl("up", "--docker-host", engine.socket)  # the recorded orchestrator is kept
    assert "nothing to do" in plain.stdout, plain.stdout
    switch = site.kitctl("up", "--orchestrator", "engine", "--docker-host", engine.socket, check=False)
    assert switch.returncode == 2 and "switching to engine is refused" in switch.stderr, (switch.stdout, switch.stderr)
    assert not engine.client().api.containers(all=True, filters={"label": f"com.docker.compose.project=kit-{site.site_id}"})
    shown = json.loads(site.kitctl("status", "--json", "--docker-host", engine.socket).stdout)
    rows = {r["service"]: r for r in shown["services"]}
    assert rows["storefront"]["container"].endswith("(2/2 tasks)") and rows["storefront"]["health"] == "healthy"
    logs = site.kitctl("logs", "db", "--tail", "200", "--docker-host", engine.socket)  # a task's container
    assert "database system is ready to accept connections" in logs.stdout + logs.stderr


class Load:
    """Steady requests from a container on the stack's overlay network to the storefront by its DNS name,
    each resolved again (dnsrr: every task), counted; and the same through the proxy's published port."""

    SCRIPT = (
        "import json, os, time, urllib.request\n"
        "ok = failed = 0; errors = []; failed_at = []\n"
        "end = time.monotonic() + float(os.environ['SECONDS'])\n"
        "while time.monotonic() < end and not os.path.exists('/tmp/stop'):\n"
        "    try:\n"
        "        urllib.request.urlopen('http://storefront:8000/healthz', timeout=5).read(); ok += 1\n"
        "    except Exception as exc:\n"
        "        failed += 1; errors.append(repr(exc)[:120]); failed_at.append(time.time())\n"
        "    time.sleep(0.05)\n"
        "print(json.dumps({'ok': ok, 'failed': failed, 'errors': errors[:5], 'failed_at': failed_at[:5]}))\n")

    def __init__(self, engine: swarm_engine.SwarmEngine, s: Stack) -> None:
        self.engine, self.site = engine, s
        self.proxy = {"ok": 0, "failed": 0}
        self._stop = threading.Event()

    def __enter__(self) -> "Load":
        from kitcore import __version__

        self.container = self.engine.client().containers.run(
            f"kitctl/storefront:{__version__}", ["/opt/kit/bin/python", "-c", self.SCRIPT], detach=True,
            network=f"kit-{self.site.site_id}_default", environment={"SECONDS": str(LOAD_SECONDS_MAX)},
            user="65534", labels={"com.kitctl.test": self.site.site_id})
        self.thread = threading.Thread(target=self._through_proxy, daemon=True)
        self.thread.start()
        time.sleep(2)
        return self

    def _through_proxy(self) -> None:
        with httpx.Client(timeout=5, headers=HOST) as client:
            while not self._stop.is_set():
                try:
                    ok = client.get(f"{shop(self.engine, self.site)}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.proxy["ok" if ok else "failed"] += 1
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()
        run_in(self.container, ["touch", "/tmp/stop"])
        self.container.wait(timeout=60)
        self.counts = json.loads(self.container.logs(stdout=True, stderr=False).decode().strip().splitlines()[-1])
        self.container.remove(force=True)


def test_a_colour_change_rolls_the_storefront_over_with_no_failed_request(site: Stack, engine) -> None:
    before = {t["ID"] for t in running_tasks(services(engine, site)["storefront"])}
    with Load(engine, site) as load:
        started = time.monotonic()
        done = up(site, engine, "--primary-color", "#00aa55")
        rollout = time.monotonic() - started
    assert "up done" in done.stdout and "storefront" in done.stdout, done.stdout
    after = services(engine, site)["storefront"]
    assert len(running_tasks(after)) == 2 and not before & {t["ID"] for t in running_tasks(after)}
    assert "#00aa55" in get(engine, site, "/branding/theme.css").text.lower()
    print(f"\nswarm rollout (colour): {rollout:.1f}s; storefront over the overlay {load.counts}; "
          f"through the proxy's host port {load.proxy}")
    assert load.counts["ok"] > 100 and load.counts["failed"] == 0, load.counts


def test_a_broken_image_is_rolled_back_with_the_old_tasks_serving(site: Stack, engine) -> None:
    import io
    import tarfile

    from kitcore import __version__

    client = engine.client()
    good = client.images.get(f"kitctl/storefront:{__version__}")
    before = {t["ID"] for t in running_tasks(services(engine, site)["storefront"])}
    dockerfile = f'FROM kitctl/storefront:{__version__}\nCMD ["/opt/kit/bin/python", "-c", "import sys; sys.exit(3)"]\n'.encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    broken, _ = client.images.build(fileobj=context, custom_context=True, tag=f"kitctl/storefront:{__version__}", rm=True)
    try:
        with Load(engine, site) as load:
            done = up(site, engine, check=False)
        assert done.returncode == 1 and "rolled back" in done.stderr, (done.stdout, done.stderr)
        after = services(engine, site)["storefront"]
        assert {t["ID"] for t in running_tasks(after)} == before  # the old tasks, never stopped
        assert after.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == good.id
        print(f"\nbroken image: storefront over the overlay {load.counts}; through the proxy {load.proxy}")
        assert load.counts["failed"] == 0 and load.proxy["failed"] == 0, (load.counts, load.proxy)
    finally:
        good.tag("kitctl/storefront", __version__)
        client.images.remove(broken.id, force=True)


def test_a_killed_task_is_replaced_and_the_shop_keeps_answering(site: Stack, engine) -> None:
    from tests.support.waiting import eventually

    victim = running_tasks(services(engine, site)["storefront"])[0]
    with Load(engine, site) as load:
        started, killed_at = time.monotonic(), time.time()
        engine.client().containers.get(victim["Status"]["ContainerStatus"]["ContainerID"]).kill()
        eventually(lambda: len(now := running_tasks(services(engine, site)["storefront"])) == 2
                   and victim["ID"] not in {t["ID"] for t in now}, 120, 0.5, what="a new storefront task")
        replaced = time.monotonic() - started
        time.sleep(3)
    print(f"\nkilled task replaced in {replaced:.1f}s; storefront over the overlay {load.counts}; "
          f"through the proxy {load.proxy}")
    # The one request the killed task was answering dies with it (one client, one request at a time); every
    # request after that is answered: by the other task at once, then by both.
    assert load.counts["failed"] <= 1 and load.counts["ok"] > 50, load.counts
    assert all(killed_at - 0.5 <= t <= killed_at + 1.5 for t in load.counts["failed_at"]), (killed_at, load.counts)
    assert get(engine, site, "/").status_code == 200
