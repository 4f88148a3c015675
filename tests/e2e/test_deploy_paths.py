"""Every deploy path under failure (issue 23), on the real engine with this tree's images.

One stack of the test's own (tests/support/kit_stack.py): HQ in a container, a
site launched by `kitctl up`. The steps run in file order and share it.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import require
from tests.support.kit_stack import Stack, launch_stack, new_stack, place_order, remove_stack
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BROKEN = f"broken{uuid.uuid4().hex[:6]}"
CRASHING_STOREFRONT = """\
FROM kitctl/storefront:{tag}
CMD ["python", "-c", "raise SystemExit('storefront of the broken release')"]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    from tests.infra.fixtures import docker_client, kit_images

    client = docker_client()
    require(bool(client.ping()), "Docker engine not reachable")
    kit_images()  # built from this tree (Docker's layer cache keeps it short)
    s = new_stack(tmp_path_factory.mktemp("paths"), "dp", client)
    try:
        launch_stack(s, "部署路径")
        yield s
    finally:
        remove_stack(s, extra_tags=(BROKEN,))


def broken_release(s: Stack) -> None:
    """Every kit image at BROKEN, the same as now except a storefront that exits at once."""
    for service in ("db", "agent", "proxy", "hq"):
        s.client.images.get(f"kitctl/{service}:{s.tag}").tag(f"kitctl/{service}", BROKEN)
    with tempfile.TemporaryDirectory() as context:
        Path(context, "Dockerfile").write_text(CRASHING_STOREFRONT.format(tag=s.tag))
        s.client.images.build(path=context, tag=f"kitctl/storefront:{BROKEN}", rm=True)


def most_running_at_once(events: list[dict[str, Any]], service: str) -> tuple[int, int]:
    """(the most containers of `service` running at one moment, how many of them started) per the engine's log."""
    running: set[str] = set()
    started: set[str] = set()
    most = 0
    for event in events:
        if event["Actor"]["Attributes"].get("com.kitctl.service") != service:
            continue
        if event["status"] == "start":
            running.add(event["id"])
            started.add(event["id"])
            most = max(most, len(running))
        elif event["status"] == "die":
            running.discard(event["id"])
    return most, len(started)


def test_crashing_upgrade_rolls_back_one_db_at_a_time_and_orders_still_flow(stack: Stack) -> None:
    broken_release(stack)
    before = {service: stack.container(service).id for service in ("db", "storefront", "agent", "proxy")}
    compose_before = (stack.site_dir / "compose.yaml").read_text()
    since = time.time()
    done = stack.kitctl("upgrade", "--to", BROKEN, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    events = list(stack.client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True, filters={
        "type": "container", "label": f"com.kitctl.site={stack.site_id}"}))
    events = [e for e in events if e.get("timeNano", 0) >= int(since * 1e9)]
    # the engine's log: never two databases on the data volume, never two agents on the metrics port
    assert most_running_at_once(events, "db") == (1, 2), [(e["status"], e["id"][:8]) for e in events]
    assert most_running_at_once(events, "agent") == (1, 2)
    assert most_running_at_once(events, "storefront")[1] >= 1  # the crashing one did start
    # every service on its previous container, running, and the last line says so
    assert {service: stack.container(service).id for service in before} == before
    assert all(stack.container(service).status == "running" for service in before)
    last = " ".join(done.stderr.split("error:")[-1].split())  # the closing line, as rich wrapped it
    assert "rolled back, every service as before" in last, done.stderr
    assert "agent previous container running (healthy)" in last and "db previous container running (healthy)" in last
    assert (stack.site_dir / "compose.yaml").read_text() == compose_before
    logs = stack.container("db").logs(since=int(since)).decode()
    assert "not properly shut down" not in logs and "automatic recovery" not in logs
    # an order placed right after is delivered, with no other command
    order, _ = place_order(stack.base)
    eventually(lambda: stack.psql(f"SELECT status FROM orders WHERE id = '{order}'") == ["delivered"], 90,
               what="order after the rollback delivered")
