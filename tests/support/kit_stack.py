"""A whole kit stack of a test's own on the real engine: HQ in a container, a site launched by `kitctl up`.

Everything carries names and a tag of the test's own (`site_id`), so runs from
other worktrees sharing the engine are neither seen nor touched, and
`remove_stack` removes exactly what `launch_stack` made. HQ grants no registry:
the images are this tree's, tagged `kitctl/<service>:<tag>`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kitctl.deploy.engine_exec import run_in
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("db", "storefront", "agent", "proxy", "hq")
SITE_SERVICES = ("db", "storefront", "agent", "proxy")
SKU = "game-steam-50"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')
SECRET = re.compile(r'class="mono secret"[^>]*>([^<]+)<')


@dataclass
class Stack:
    root: Path
    site_id: str
    tag: str
    network: str
    hq_name: str
    hq_port: int
    http_port: int
    metrics_port: int
    client: Any
    site_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.site_dir = self.root / self.site_id  # the project is named after it: unique on the engine

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def hq_url(self) -> str:
        return f"http://127.0.0.1:{self.hq_port}"

    def container(self, service: str) -> Any:
        if service == "hq":
            return self.client.containers.get(self.hq_name)
        found = [c for c in self.client.containers.list(all=True, filters={"label": [
            f"com.kitctl.site={self.site_id}", f"com.kitctl.service={service}"]}) if not c.name.endswith("_kitctl_old")]
        assert len(found) == 1, [c.name for c in found]
        return found[0]

    def kitctl(self, *args: str, check: bool = True, site: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KITCTL_")}
        done = subprocess.run([sys.executable, "-m", "kitctl", *args, *(["--site-dir", str(self.site_dir)] if site else [])],
                              capture_output=True, text=True, timeout=600, cwd=ROOT,
                              env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
        assert not check or done.returncode == 0, f"kitctl {args} → {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def psql(self, query: str) -> list[str]:
        done = run_in(self.container("db"), ["psql", "-X", "-qtA", "-U", "postgres", "-d", "kit", "-c", query])
        assert done.exit_code == 0, done.output.decode()[-400:]
        return [line for line in done.stdout.decode().splitlines() if line.strip()]

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return sample.value
        return None


def engine_with_kit_images() -> Any:
    """The local engine (required: fails under CI=true), with this tree's images built."""
    from tests.conftest import require
    from tests.infra.fixtures import docker_client, kit_images

    client = docker_client()
    require(bool(client.ping()), "Docker engine not reachable")
    kit_images()  # Docker's layer cache keeps it short
    return client


def new_stack(root: Path, prefix: str, client: Any) -> Stack:
    from tests.support.postgres import free_port

    suffix = uuid.uuid4().hex[:8]
    return Stack(root=root, site_id=f"{prefix}{suffix}", tag=f"{prefix}{suffix}", network=f"kitctl-{prefix}-{suffix}",
                 hq_name=f"kitctl-{prefix}-hq-{suffix}", hq_port=free_port(), http_port=free_port(),
                 metrics_port=free_port(), client=client)


def launch_stack(s: Stack, name: str, *up_args: str) -> None:
    """Tag this tree's images for the stack, start HQ, `kitctl up` the site and wait until it sells."""
    from kitcore import __version__

    for service in SERVICES:  # a tag of our own: others rebuilding the shared tag change nothing here
        s.client.images.get(f"kitctl/{service}:{__version__}").tag(f"kitctl/{service}", s.tag)
    s.client.networks.create(s.network, driver="bridge", labels={"com.kitctl.test": s.site_id})
    token = prepare_hq(s)
    start_hq(s)
    (s.root / "licence.jwt").write_text(token)
    s.kitctl("up", "--licence", f"@{s.root / 'licence.jwt'}", "--hq-keys", str(s.root / "hq-keys.json"),
             "--name", name, "--domain", "localhost", "--tls", "off", "--http-port", str(s.http_port),
             "--metrics-port", str(s.metrics_port), "--hq-network", s.network, "--image-tag", s.tag, *up_args)
    eventually(lambda: httpx.get(f"{s.base}/p/{SKU}", timeout=3).status_code == 200, 120, what="catalog synced")


def prepare_hq(stack: Stack) -> str:
    """HQ's state (keys, catalog, card keys, open risk rules) and the site's licence; returns the token."""
    from demo import catalog
    from hq import catalog_csv, inventory, licences
    from hq.risk import parse_rules
    from hq.service import HQ
    from hq.settings import HQSettings
    from tests.agent.helpers import OPEN_RULES

    settings = HQSettings(dir=stack.root / "hq", public_url=f"http://{stack.hq_name}:8600", registry_url=None,
                          heartbeat_interval_seconds=5)
    hq = HQ.open(settings)
    try:
        (stack.root / "hq-keys.json").write_text(json.dumps(hq.keys.jwks()))
        catalog_csv.import_items(hq, "test", catalog.items_csv())
        inventory.import_csv(hq, "test", catalog.card_keys_csv(per_sku=200))
        hq.rules.save(parse_rules(OPEN_RULES))
        token = str(licences.issue(hq, "test", stack.site_id, "basic", ["game", "phone"], 30)["token"])
    finally:
        hq.close()
    for p in [stack.root / "hq", *(stack.root / "hq").rglob("*")]:
        if os.geteuid() == 0:
            os.lchown(p, 10001, 10001)  # the HQ image runs as uid 10001
    return token


def start_hq(stack: Stack) -> None:
    stack.client.containers.run(
        f"kitctl/hq:{stack.tag}", name=stack.hq_name, detach=True, network=stack.network,
        ports={"8600/tcp": ("127.0.0.1", stack.hq_port)},
        volumes={str(stack.root / "hq"): {"bind": "/var/lib/kit/hq", "mode": "rw"}},
        environment={"KIT_HQ_DIR": "/var/lib/kit/hq", "KIT_HQ_PUBLIC_URL": f"http://{stack.hq_name}:8600",
                     "KIT_HQ_REGISTRY_URL": "", "KIT_HQ_HEARTBEAT_INTERVAL_SECONDS": "5"},
        labels={"com.kitctl.test": stack.site_id})
    eventually(lambda: httpx.get(f"{stack.hq_url}/healthz", timeout=1).status_code == 200, 90, what="HQ answering")


def remove_stack(s: Stack, extra_tags: tuple[str, ...] = ()) -> None:
    """`kitctl down --volumes`, then whatever of the test's own is left: containers, networks, volumes, tags."""
    if (s.site_dir / "compose.yaml").exists():
        s.kitctl("down", "--volumes", "--yes", check=False)
    for c in s.client.containers.list(all=True, filters={"label": f"com.kitctl.site={s.site_id}"}):
        c.remove(force=True, v=True)
    for c in s.client.containers.list(all=True, filters={"label": f"com.kitctl.test={s.site_id}"}):
        c.remove(force=True, v=True)
    for n in s.client.networks.list(filters={"label": f"com.kitctl.test={s.site_id}"}):
        n.remove()
    for v in s.client.volumes.list():
        if s.site_id in v.name:
            v.remove(force=True)
    remove_tags(s, s.tag, *extra_tags)


def remove_tags(s: Stack, *tags: str) -> None:
    """Untag `kitctl/<service>:<tag>` for each tag a test made (the layers stay for other tags)."""
    import docker

    for tag in tags:
        for service in SERVICES:
            try:
                s.client.images.remove(f"kitctl/{service}:{tag}", noprune=True)
            except docker.errors.ImageNotFound:
                pass


def place_order(base: str, password: str = "order-pw-1",
                headers: dict[str, str] | None = None) -> tuple[str, httpx.Cookies]:
    """One checkout as a buyer does it: the order's id and the cookies that may see it."""
    with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
        page = client.get(f"/p/{SKU}").text
        form = {"csrf": CSRF.search(page).group(1), "nonce": NONCE.search(page).group(1),  # type: ignore[union-attr]
                "quantity": "1", "contact": f"buyer-{uuid.uuid4().hex[:6]}@example.cn",
                "password": password, "password2": password, "region": "CN"}  # the stack's buyers come from a private address
        placed = client.post(f"/p/{SKU}/checkout", data=form)
        assert placed.status_code == 303, placed.text[-400:]
        match = re.match(r"^/order/([A-Z0-9]+)", placed.headers["location"])
        assert match, placed.headers["location"]
        return match.group(1), client.cookies


def card_keys(base: str, order_id: str, password: str, headers: dict[str, str] | None = None) -> list[str]:
    """The card keys a buyer reads on a device that has never seen the order: by its id and password."""
    with httpx.Client(base_url=base, timeout=10, follow_redirects=True, headers=headers) as client:
        page = client.get("/order").text
        shown = client.post("/order", data={"csrf": CSRF.search(page).group(1),  # type: ignore[union-attr]
                                            "order_id": order_id, "password": password})
        assert shown.status_code == 200, shown.status_code
        return SECRET.findall(shown.text)


def serving_again(s: Stack) -> None:
    """Start whatever of the stack a test stopped, then wait until HQ answers and the shop sells again."""
    for service in SERVICES:
        container = s.container(service)
        if container.status != "running":
            container.start()
    eventually(lambda: httpx.get(f"{s.hq_url}/healthz", timeout=1).status_code == 200, 90, 0.2, what="HQ answering")
    eventually(lambda: httpx.get(f"{s.base}/p/{SKU}", timeout=3).status_code == 200, 120, 0.2, what="the shop selling")
