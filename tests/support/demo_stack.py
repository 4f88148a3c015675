"""A demo stack of its own for an end-to-end test module: unique names, free loopback ports, torn down."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tests.conftest import require
from tests.support.postgres import free_port


@contextmanager
def own_demo(root: Path, prefix: str, heartbeat_seconds: int) -> Iterator[Any]:
    """`demo_up` with this run's names and ports (its own registry: never the demo's or the shared one);
    `demo_down` afterwards, also after a failed launch, so nothing of the run is left behind."""
    from demo.stack import Demo, demo_down, demo_up, services

    try:
        services("start", "all")
    except Exception as exc:  # noqa: BLE001
        require(False, f"services did not start: {exc}")
    suffix = uuid.uuid4().hex[:6]
    d = Demo(root=root, site_id=f"{prefix}-{suffix}", network=f"kitctl-e2e-{suffix}",
             hq_container=f"kitctl-e2e-hq-{suffix}", hq_port=free_port(), http_port=free_port(),
             https_port=free_port(), metrics_port=free_port(), heartbeat_seconds=heartbeat_seconds,
             registry=f"127.0.0.1:{free_port()}")
    try:
        demo_up(d)
        yield d
    finally:
        demo_down(d)
