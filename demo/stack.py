"""Bring the demo up and down: HQ in a container, its registry, one sub-site.

Steps run in order and each says what it does; every step is idempotent so
re-running the demo repairs or leaves alone what is already there.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kitcore import __version__
from demo import catalog
from demo.services import registry_admin, services
from kitcore.errors import KitError
from kitcore.licence.keys import write_private
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    from typing import Callable, Sequence

    import docker

    from hq.service import HQ

HQ_UID = 10001  # the user the kit's service images run as
DEMO_LABEL = "com.kitctl.demo"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Demo:
    """Where the demo keeps its state and which loopback ports it uses."""

    root: Path
    site_id: str = "xingchen"
    site_name: str = "星辰游戏"
    tier: str = "basic"
    categories: tuple[str, ...] = ("game", "phone")
    hq_port: int = 8600
    http_port: int = 8080
    https_port: int = 8443
    metrics_port: int = 9464
    network: str = "kitctl-demo"
    hq_container: str = "kitctl-demo-hq"
    heartbeat_seconds: int = 10
    registry: str = "127.0.0.1:5055"  # the demo's own registry (demo.registry), never the shared one on :5000
    monitoring: bool = False  # `kitctl up --with-monitoring`: Prometheus and Alertmanager beside the site
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    hq_env: tuple[tuple[str, str], ...] = ()  # more KIT_HQ_* settings for HQ's container (e.g. its alert webhook)
    payments: bool = False  # buyers pay through the epay sandbox (demo.payments); `make demo` turns it on
    pay_port: int = 8610  # the sandbox cashier payers open
    checkouts_per_minute: int | None = None  # `kitctl up --checkouts-per-minute`: a load from one address (tests)

    @property
    def instance(self) -> str:
        """The value of `com.kitctl.demo` on what this demo creates: its teardown removes only those."""
        return self.hq_container

    @property
    def hq_dir(self) -> Path:
        return self.root / "hq"

    @property
    def site_dir(self) -> Path:
        return self.root / "site"

    @property
    def jwks_path(self) -> Path:
        return self.root / "hq-keys.json"

    @property
    def licence_path(self) -> Path:
        return self.root / "licence.jwt"

    @property
    def operator_token_path(self) -> Path:
        return self.root / "operator.token"

    @property
    def logo_path(self) -> Path:
        return self.root / "logo.svg"

    @property
    def hq_url(self) -> str:
        return f"http://127.0.0.1:{self.hq_port}"

    @property
    def hq_internal_url(self) -> str:
        """How the agent container reaches HQ: by name on the shared network."""
        return f"http://{self.hq_container}:8600"

    @property
    def pay_container(self) -> str:
        return f"{self.hq_container}-pay"

    @property
    def site_url(self) -> str:
        return f"https://localhost:{self.https_port}"


def say(message: str) -> None:
    from kitctl.console import out

    out().print(f"[bold cyan]==>[/] {message}")


# -- HQ state ---------------------------------------------------------------
def open_hq(demo: Demo) -> HQ:
    from hq.service import HQ
    from hq.settings import HQSettings

    settings = HQSettings(dir=demo.hq_dir, public_url=demo.hq_internal_url, registry_url=demo.registry,
                          heartbeat_interval_seconds=demo.heartbeat_seconds)
    return HQ.open(settings)


def prepare_hq_state(demo: Demo) -> None:
    """Keys, an operator, the catalog and card keys, and the site's licence (each once)."""
    from hq import catalog_csv, inventory, licences, operators

    demo.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    hq = open_hq(demo)
    try:
        demo.jwks_path.write_text(json.dumps(hq.keys.jwks(), indent=2))
        if not demo.operator_token_path.exists():
            write_private(demo.operator_token_path, operators.add(hq, "demo").encode())
        catalog_csv.import_items(hq, "demo", catalog.items_csv())
        marker = demo.root / ".card-keys-imported"
        if not marker.exists():
            inventory.import_csv(hq, "demo", catalog.card_keys_csv())
            marker.touch()
        if not demo.licence_path.exists():
            issued = licences.issue(hq, "demo", demo.site_id, demo.tier, list(demo.categories), 365)
            write_private(demo.licence_path, str(issued["token"]).encode())
    finally:
        hq.close()
    if not demo.logo_path.exists():
        demo.logo_path.write_text(catalog.LOGO_SVG)
    _chown_tree(demo.hq_dir, HQ_UID)


def _chown_tree(path: Path, uid: int) -> None:
    """The HQ container runs as `uid`; it must own its state directory."""
    if os.geteuid() != 0:
        return
    for p in [path, *path.rglob("*")]:
        os.lchown(p, uid, uid)


# -- registry and images ----------------------------------------------------
def point_registry_at_hq(demo: Demo) -> None:
    """HQ grants each licence registry access in its htpasswd; the demo's own registry reads it at start."""
    from demo.registry import start_registry

    start_registry(demo.root, demo.registry, demo.hq_dir / "registry" / "htpasswd")
    _chown_tree(demo.hq_dir, HQ_UID)


def build_and_push_images(client: "docker.DockerClient", demo: Demo) -> None:
    from kitctl.console import line_progress
    from kitctl.images.build import build_images
    from kitctl.images.registry import checked_credentials, push_images

    built, pushed = demo_images(demo)
    say("building images (cached layers are reused; the first run takes a few minutes)")
    with line_progress(side_by_side=True) as on_line:
        build_images(client, REPO, __version__, built, on_line=on_line)
    say(f"pushing images to {demo.registry}")
    creds = checked_credentials(demo.registry, *registry_admin())
    with line_progress() as on_line:
        push_images(client, pushed, __version__, creds, on_line)


def demo_images(demo: Demo) -> tuple[list[str], list[str]]:
    """(built, pushed): the site's images, Prometheus' and Alertmanager's only when the site runs them, and HQ's,
    whose container runs from the local image, so it is built and not pushed (the site pulls the others)."""
    from kitctl.images import MONITORING_SERVICES, SITE_SERVICES, select_services

    pushed = select_services([*SITE_SERVICES, *(MONITORING_SERVICES if demo.monitoring else ())])
    return select_services([*pushed, "hq"]), pushed


# -- HQ container -------------------------------------------------------------
def start_hq_container(client: "docker.DockerClient", demo: Demo) -> None:
    import docker

    try:
        client.networks.get(demo.network)
    except docker.errors.NotFound:
        client.networks.create(demo.network, driver="bridge", labels={DEMO_LABEL: demo.instance})
    image = f"kitctl/hq:{__version__}"
    try:
        existing = client.containers.get(demo.hq_container)
        if existing.status == "running" and existing.image.id == client.images.get(image).id:
            say(f"HQ already running ({demo.hq_url})")
            return
        existing.remove(force=True, v=True)  # with its anonymous volumes
    except docker.errors.NotFound:
        pass
    say(f"starting HQ ({image}) on {demo.hq_url}")
    client.containers.run(
        image,
        name=demo.hq_container,
        detach=True,
        network=demo.network,
        ports={"8600/tcp": ("127.0.0.1", demo.hq_port)},
        volumes={str(demo.hq_dir.resolve()): {"bind": "/var/lib/kit/hq", "mode": "rw"}},
        environment={
            "KIT_HQ_DIR": "/var/lib/kit/hq",
            "KIT_HQ_PUBLIC_URL": demo.hq_internal_url,
            "KIT_HQ_REGISTRY_URL": demo.registry,
            "KIT_HQ_HEARTBEAT_INTERVAL_SECONDS": str(demo.heartbeat_seconds),
            "KIT_HQ_PAYER_URL": demo.hq_url,  # the gateway sends payers back here: their browser's way to HQ
            **dict(demo.hq_env),
        },
        labels={DEMO_LABEL: demo.instance},
        restart_policy={"Name": "unless-stopped"},
    )
    wait_http(f"{demo.hq_url}/healthz", 90)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return
        except Exception as exc:  # not up yet
            last = str(exc)
        time.sleep(0.5)
    raise KitError(f"{url} did not answer within {timeout:.0f} s ({last})")


# -- the site -----------------------------------------------------------------
def up_args(demo: Demo) -> list[str]:
    return [
        "up",
        "--licence", f"@{demo.licence_path}",
        "--hq-keys", str(demo.jwks_path),
        "--name", demo.site_name,
        "--domain", "localhost",
        "--logo", str(demo.logo_path),
        "--site-dir", str(demo.site_dir),
        "--http-port", str(demo.http_port),
        "--https-port", str(demo.https_port),
        "--metrics-port", str(demo.metrics_port),
        "--hq-network", demo.network,
        "--contact", "support@localhost",
    ] + (["--with-monitoring", "--prometheus-port", str(demo.prometheus_port),
          "--alertmanager-port", str(demo.alertmanager_port)] if demo.monitoring else []) + (
        ["--checkouts-per-minute", str(demo.checkouts_per_minute)] if demo.checkouts_per_minute else [])


def launch_site(demo: Demo) -> None:
    from kitctl.cli import run

    say(f"kitctl up: {demo.site_name} ({demo.site_id}, tier {demo.tier})")
    code = run(up_args(demo))
    if code != 0:
        raise KitError(f"kitctl up failed (exit {code})")


def summary(demo: Demo) -> None:
    from kitctl.console import out

    out().print()
    out().print("[bold green]demo sub-site is up[/]")
    out().print(f"  sub-site     {demo.site_url}  (self-signed; also http://localhost:{demo.http_port})")
    out().print(f"  site admin   {demo.site_url}/admin  (login printed above by kitctl up, once)")
    out().print(f"  HQ fleet     {demo.hq_url}/fleet  (operator token in {demo.operator_token_path})")
    out().print(f"  metrics      http://127.0.0.1:{demo.metrics_port}/metrics")
    if demo.payments:
        out().print(f"  payments     epay sandbox cashier http://127.0.0.1:{demo.pay_port}/  (no money moves)")
    out().print(f"  licence      kitctl licence inspect @{demo.licence_path} --hq-keys {demo.jwks_path}")


def demo_up(demo: Demo, ship_images: bool = True,
            before_site: "Sequence[Callable[[docker.DockerClient, Demo], None]]" = ()) -> None:
    """ship_images=False: the caller has built this tree's images and put them in the demo registry's
    storage itself (the tests build and push once a run and give each of their demos a copy).
    before_site: steps run once HQ is up, before `kitctl up` (`make demo`: demo.payments.enable_payments)."""
    from kitctl.engine import connect

    client = connect(None)
    say("HQ state: keys, operator, catalog, card keys, licence")
    prepare_hq_state(demo)
    say("registry: HQ's access list")
    point_registry_at_hq(demo)
    if ship_images:
        build_and_push_images(client, demo)
    start_hq_container(client, demo)
    for step in before_site:
        step(client, demo)
    launch_site(demo)
    summary(demo)


def _untag_registry_images(client: "docker.DockerClient", registry: str) -> None:
    """The names pushed to or pulled from the demo's registry; the images stay under their own (kitctl/…)."""
    import docker

    prefix = f"{registry}/"
    for image in client.images.list():
        for ref in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
            if ref.startswith(prefix):
                try:
                    client.api.remove_image(ref, noprune=True)
                except docker.errors.NotFound:
                    pass  # a digest goes with the last tag of its repository


def demo_down(demo: Demo) -> None:
    """Remove the site (volumes included), HQ's container and network, and the demo's files."""
    import shutil

    import docker

    from kitctl.cli import run

    if SiteDir(demo.site_dir).compose.exists():
        say("kitctl down --volumes")
        run(["down", "--volumes", "--yes", "--site-dir", str(demo.site_dir)])
    from demo.registry import stop_registry

    client = docker.from_env()
    mine = {"label": f"{DEMO_LABEL}={demo.instance}"}  # this demo's, never another run's
    for container in client.containers.list(all=True, filters=mine):
        say(f"removing {container.name}")
        container.remove(force=True, v=True)  # with its anonymous volumes (the HQ image declares one)
    for network in client.networks.list(filters=mine):
        network.remove()
    say("registry: stopping the demo's own registry")
    stop_registry(demo.root)
    _untag_registry_images(client, demo.registry)
    if demo.root.exists():
        shutil.rmtree(demo.root)
