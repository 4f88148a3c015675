"""A demo stack of its own for an end-to-end test module: unique names, free loopback ports, torn down.

`demo_up` builds every image and pushes it to the demo's new, empty registry: about a minute of
compressing layers each time. The tests build once a run (`kit_images`), push once into a registry of
the run's own (`registry_storage`) and give each demo's registry a hard-linked copy of that storage
before it starts, so the site still pulls with its licence from a registry of its own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from tests.conftest import require
from tests.support.postgres import free_port

if TYPE_CHECKING:
    from demo.stack import Demo

_STORAGE: list[Path] = []  # the pushed registry storage, once a process


def registry_storage() -> Path:
    """Storage of a registry holding this tree's images at the kit's version (built and pushed once a process)."""
    if _STORAGE:
        return _STORAGE[0]
    from demo.registry import registry_dir, start_registry, stop_registry
    from demo.services import registry_admin
    from kitcore import __version__
    from kitctl.images import select_services
    from kitctl.images.registry import checked_credentials, push_images
    from tests.infra.fixtures import docker_client, kit_images

    kit_images()
    root = Path(tempfile.mkdtemp(prefix="kitctl-e2e-registry-"))
    atexit.register(shutil.rmtree, root, True)
    address = f"127.0.0.1:{free_port()}"
    client = docker_client()
    start_registry(root, address, root / "htpasswd")
    try:
        pushed = push_images(client, select_services(None), __version__, checked_credentials(address, *registry_admin()))
    finally:
        stop_registry(root)
    for ref in pushed:  # the push tagged them for this registry: those tags are ours to remove
        client.images.remove(ref, noprune=True)
    _STORAGE.append(registry_dir(root) / "data")
    return _STORAGE[0]


def demo_up_with_run_images(demo: Demo) -> None:
    """`demo_up`, its registry starting on a copy of the run's pushed storage instead of a build and a push."""
    from demo.registry import registry_dir
    from demo.stack import demo_up

    shutil.copytree(registry_storage(), registry_dir(demo.root) / "data", copy_function=os.link)
    demo_up(demo, ship_images=False)


@contextmanager
def own_demo(root: Path, prefix: str, heartbeat_seconds: int,
             hq_env: tuple[tuple[str, str], ...] = (), checkouts_per_minute: int | None = None) -> Iterator[Any]:
    """`demo_up` with this run's names and ports (its own registry: never the demo's or the shared one);
    `demo_down` afterwards, also after a failed launch, so nothing of the run is left behind."""
    from demo.stack import Demo, demo_down, services

    try:
        services("start", "all")
    except Exception as exc:  # noqa: BLE001
        require(False, f"services did not start: {exc}")
    suffix = uuid.uuid4().hex[:6]
    d = Demo(root=root, site_id=f"{prefix}-{suffix}", network=f"kitctl-e2e-{suffix}",
             hq_container=f"kitctl-e2e-hq-{suffix}", hq_port=free_port(), http_port=free_port(),
             https_port=free_port(), metrics_port=free_port(), heartbeat_seconds=heartbeat_seconds,
             registry=f"127.0.0.1:{free_port()}", pay_port=free_port(), hq_env=hq_env,
             checkouts_per_minute=checkouts_per_minute)
    try:
        demo_up_with_run_images(d)
        yield d
    finally:
        demo_down(d)
