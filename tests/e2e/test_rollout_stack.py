"""Rollouts by rings on the real engine (issue 19): two sites on one host, one HQ, the host service of each.

The session's shared stack is the canary (ring 0) and a second site launched here on the same host and
HQ is ring 1, both at version A (the run's images). HQ rolls out B (A's images under another tag: every
container is recreated through the gated path) to ring 0, then ring 1: both end on B, healthy, their
orders still there. Then C, whose storefront never turns healthy: the canary's host rolls it back to B,
reports it, and the rollout halts before ring 1, which is never asked. Orders go through HQ's own CLI in
its container (its database is HQ's), as an operator on the HQ host would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from kitctl.deploy.engine_exec import run_in
from tests.support.kit_stack import (
    ROOT, SERVICES, SITE_SERVICES, SKU, Stack, card_keys, new_stack, place_order, remove_tags, serving_again,
)
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN = uuid.uuid4().hex[:6]
B, C = f"rolloutb{RUN}", f"rolloutc{RUN}"
HQ_DIR = "/var/lib/kit/hq"
UNHEALTHY_STOREFRONT = 'FROM kitctl/storefront:{tag}\nCMD ["sleep", "3600"]\n'
SET_RINGS = """
import json, sys
from hq.models import Site
from hq.service import HQ
from hq.settings import HQSettings
hq = HQ.open(HQSettings())
with hq.session() as s:
    for site, ring in json.loads(sys.argv[1]).items():
        s.get(Site, site).ring = ring
hq.close()
"""


def hq_cli(s: Stack, *args: str) -> str:
    """`kitctl hq …` in HQ's container, as its own user (the database is HQ's)."""
    done = run_in(s.container("hq"), ["python", "-m", "kitctl", "hq", *args, "--hq-dir", HQ_DIR],
                  environment={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output.decode()[-1500:]
    return done.output.decode()


def rollout(s: Stack) -> dict[str, Any]:
    return json.loads(hq_cli(s, "rollout", "status", "--json"))


def running_tags(s: Stack) -> set[str]:
    """The tags the site's kit containers were created from."""
    return {s.container(service).attrs["Config"]["Image"].rsplit(":", 1)[1] for service in SITE_SERVICES}


def upgrade_commands(s: Stack) -> list[str]:
    return s.psql("SELECT payload FROM hq_commands WHERE type = 'upgrade' ORDER BY seq")


@pytest.fixture(scope="module")
def sites(shared_stack: Stack) -> Iterator[tuple[Stack, Stack]]:
    """(canary, wave): the shared site in ring 0 and a second site of this module in ring 1, one host, one HQ."""
    canary = shared_stack
    wave = new_stack(canary.root, "rw", canary.client)
    wave.tag, wave.network, wave.hq_name, wave.hq_port = canary.tag, canary.network, canary.hq_name, canary.hq_port
    try:
        token = hq_cli(canary, "licence", "issue", "--site", wave.site_id, "--categories", "game,phone",
                       "--registry-url", "", "--hq-url", f"http://{canary.hq_name}:8600").strip().splitlines()[-1]
        (wave.root / f"{wave.site_id}.jwt").write_text(token)
        done = run_in(canary.container("hq"), ["python", "-c", SET_RINGS, json.dumps({canary.site_id: 0, wave.site_id: 1})])
        assert done.exit_code == 0, done.output.decode()[-800:]
        wave.kitctl("up", "--licence", f"@{wave.root / f'{wave.site_id}.jwt'}", "--hq-keys",
                    str(canary.root / "hq-keys.json"), "--name", "第二站点", "--domain", "localhost", "--tls", "off",
                    "--http-port", str(wave.http_port), "--metrics-port", str(wave.metrics_port),
                    "--hq-network", canary.network, "--image-tag", canary.tag)
        eventually(lambda: httpx.get(f"{wave.base}/p/{SKU}", timeout=3).status_code == 200, 120, what="wave sells")
        yield canary, wave
    finally:
        if (wave.site_dir / "compose.yaml").exists():
            wave.kitctl("down", "--volumes", "--yes", check=False)
        for c in wave.client.containers.list(all=True, filters={"label": f"com.kitctl.site={wave.site_id}"}):
            c.remove(force=True, v=True)
        for v in wave.client.volumes.list():
            if wave.site_id in v.name:
                v.remove(force=True)
        if canary.tag not in (canary.site_dir / "compose.yaml").read_text():
            canary.kitctl("upgrade", "--to", canary.tag, check=False)  # handed on at the version it came with
        remove_tags(canary, B, C)
        serving_again(canary)


def release(s: Stack, tag: str, unhealthy_storefront: bool = False) -> None:
    """Every kit image under `tag`: A's own, or with a storefront that runs but never turns healthy."""
    for service in SERVICES:
        if not (unhealthy_storefront and service == "storefront"):
            s.client.images.get(f"kitctl/{service}:{s.tag}").tag(f"kitctl/{service}", tag)
    if unhealthy_storefront:
        with tempfile.TemporaryDirectory() as context:
            Path(context, "Dockerfile").write_text(UNHEALTHY_STOREFRONT.format(tag=s.tag))
            s.client.images.build(path=context, tag=f"kitctl/storefront:{tag}", rm=True)


def host_service(s: Stack, log: Path) -> "subprocess.Popen[bytes]":
    """`kitctl service run` for the site, as its unit would start it (HQ reached at its published port).

    Each upgrade's health gate waits 60 s: a loaded CI host took over 30 s to bring a healthy version back
    (a false "failed"); C's storefront, which never turns healthy, is failed by the engine at ~55 s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITCTL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "kitctl", "service", "run", "--site-dir", str(s.site_dir), "--interval", "1",
         "--timeout", "60", "--hq-url", s.hq_url], cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})


def test_a_version_goes_ring_by_ring_and_a_broken_one_halts_at_the_canary(sites, tmp_path) -> None:
    canary, wave = sites
    started = time.monotonic()
    orders = {}
    for s in (canary, wave):
        order, _ = place_order(s.base)
        eventually(lambda: s.psql(f"SELECT status FROM orders WHERE id = '{order}'") == ["delivered"], 90, 0.5,
                   what="an order delivered")
        orders[s.site_id] = (order, card_keys(s.base, order, "order-pw-1"))
    release(canary, B)
    release(canary, C, unhealthy_storefront=True)
    logs = {s.site_id: tmp_path / f"{s.site_id}.log" for s in (canary, wave)}
    services = [host_service(s, logs[s.site_id]) for s in (canary, wave)]
    try:
        hq_cli(canary, "rollout", "start", B, "--rings", "0,1", "--soak", "0")
        done = eventually(lambda: (r := rollout(canary))["state"] != "running" and r, 240, 2,
                          what=f"rollout of {B} ending")
        assert done["state"] == "done", (done, {k: v.read_text()[-2000:] for k, v in logs.items()})
        by_site = {m["site"]: m for m in done["sites"]}
        assert by_site[canary.site_id]["reported_at"] <= by_site[wave.site_id]["reported_at"]  # canary first
        for s in (canary, wave):
            assert running_tags(s) == {B} and f"kitctl/agent:{B}" in (s.site_dir / "compose.yaml").read_text()
            assert httpx.get(f"{s.base}/p/{SKU}", timeout=5).status_code == 200
            order, keys = orders[s.site_id]
            assert card_keys(s.base, order, "order-pw-1") == keys  # data intact
        print(f"rollout of B over two rings: {time.monotonic() - started:.0f} s since the start of the test")

        hq_cli(canary, "rollout", "start", C, "--rings", "0,1", "--soak", "0")
        halted = eventually(lambda: (r := rollout(canary))["state"] != "running" and r, 180, 2,
                            what=f"rollout of {C} ending")
        assert halted["state"] == "halted", (halted, logs[canary.site_id].read_text()[-2000:])
        assert halted["reason"].startswith(f"ring 0: {canary.site_id} failed: storefront")
        assert {m["site"]: m["state"] for m in halted["sites"]} == {canary.site_id: "failed", wave.site_id: "waiting"}
        # the canary rolled back to B, healthy and selling; ring 1 was never asked
        assert running_tags(canary) == {B} and all(canary.container(x).status == "running" for x in SITE_SERVICES)
        eventually(lambda: httpx.get(f"{canary.base}/p/{SKU}", timeout=5).status_code == 200, 60, 0.5,
                   what="the canary selling")
        order, keys = orders[canary.site_id]
        assert card_keys(canary.base, order, "order-pw-1") == keys
        assert len(upgrade_commands(wave)) == 1 and C not in " ".join(upgrade_commands(wave))
        assert running_tags(wave) == {B}
        print(f"rollout e2e up to the halt: {time.monotonic() - started:.0f} s")

        # HQ rolls B back: each site goes back to the version it reported running before B (A), through
        # its host service; this also hands the shared canary back at A (its teardown upgrade is skipped)
        rolling = time.monotonic()
        hq_cli(canary, "rollout", "rollback", done["id"], "--reason", "back to A")
        def rolled_back() -> dict[str, Any] | None:
            record = json.loads(hq_cli(canary, "rollout", "status", done["id"], "--json"))
            return record if all(m["rollback"] in ("done", "failed") for m in record["sites"]) else None

        back = eventually(rolled_back, 240, 2, what=f"rollback of {B}")
        assert back["state"] == "rolled_back"
        assert {m["site"]: (m["rollback"], m["previous"]) for m in back["sites"]} == \
            {canary.site_id: ("done", canary.tag), wave.site_id: ("done", canary.tag)}, \
            (back, {k: v.read_text()[-2000:] for k, v in logs.items()})
        for s in (canary, wave):
            assert running_tags(s) == {canary.tag}
            eventually(lambda: httpx.get(f"{s.base}/p/{SKU}", timeout=5).status_code == 200, 60, 0.5,
                       what="selling after the rollback")
            order, keys = orders[s.site_id]
            assert card_keys(s.base, order, "order-pw-1") == keys
        print(f"rollback of {B} on both sites: {time.monotonic() - rolling:.0f} s; "
              f"rollout e2e: {time.monotonic() - started:.0f} s in all")
    finally:
        for proc in services:
            proc.terminate()
        for proc in services:
            proc.wait(30)
