"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.deploy.stack import LOGO_PNG
from tests.support import swarm_engine
from tests.support.kit_stack import Stack, engine_with_kit_images, launch_stack, new_stack, prepare_hq, remove_stack


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One kit stack (tests/support/kit_stack.py: HQ in a container, a site by `kitctl up`, with a logo) for
    the modules that take turns on it, in file order: a launch costs a minute or more on this machine.

    A module may change the stack (stop a service, upgrade, restore it elsewhere) but hands it on serving
    (`serving_again`), and removes what it made itself (tags, other sites). Users: test_deploy_paths,
    test_failfast, test_regions_api_stack (licence upgraded to pro and back, the proxy on networks of its own
    for a while), test_rollout_stack.
    """
    s = new_stack(tmp_path_factory.mktemp("shared"), "sh", engine_with_kit_images())
    (s.root / "logo.png").write_bytes(LOGO_PNG)
    try:
        launch_stack(s, "共用站点", "--logo", str(s.root / "logo.png"))
        yield s
    finally:
        remove_stack(s)


@pytest.fixture(scope="session")
def swarm_manager() -> Iterator[swarm_engine.SwarmEngine]:
    """One private Swarm engine (tests/support/swarm_engine.py) with the kit's images (and HQ's), for
    test_swarm, test_swarm_hq and test_swarm_ops in turn: its start and the image copy cost half a minute or
    more. Started with a bridge of its own in its namespace, so test_swarm_ops can join a worker engine to it."""
    from kitcore import __version__
    from tests.conftest import require

    why = swarm_engine.available()
    require(why is None, why or "")
    engine_with_kit_images()
    started = swarm_engine.start([f"kitctl/{s}:{__version__}" for s in (*swarm_engine.KIT_SERVICES, "hq")], cluster=True)
    try:
        yield started
    finally:
        swarm_engine.stop(started)


@pytest.fixture(scope="session")
def swarm_site(swarm_manager: swarm_engine.SwarmEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One site on that engine (not yet deployed: test_swarm's first test runs `up --orchestrator swarm`), for
    test_swarm, then test_swarm_ops, which takes it through backup, down, restore, upgrade and a second node.
    Removed at the end with the database label it put on the manager."""
    s = new_stack(tmp_path_factory.mktemp("swarm"), "sw", swarm_manager.client())
    (s.root / "licence.jwt").write_text(prepare_hq(s))
    yield s
    if (s.site_dir / "compose.yaml").exists():
        s.kitctl("down", "--volumes", "--yes", "--docker-host", swarm_manager.socket, check=False)
    api = swarm_manager.client().api
    for node in api.nodes():
        labels = node["Spec"].get("Labels") or {}
        if any(s.site_id in key for key in labels):
            spec = {**node["Spec"], "Labels": {k: v for k, v in labels.items() if s.site_id not in k}}
            api.update_node(node["ID"], node["Version"]["Index"], spec)


LOG_LINES = 25  # per container, at the end of a failed test's report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed end-to-end test's report ends with the last lines each container of its site logged: the
    storefront's "database unreachable … because" or the agent's HQ errors say what the test saw only the
    outside of (CI keeps nothing else)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when == "call":
        for site_id in {getattr(v, "site_id", None) for v in getattr(item, "funcargs", {}).values()} - {None}:
            report.sections.append((f"containers of site {site_id}", _site_logs(str(site_id))))


def _site_logs(site_id: str) -> str:
    import docker

    try:
        client = docker.from_env()
        containers = client.containers.list(all=True, filters={"label": f"com.kitctl.site={site_id}"})
        return "\n".join(f"--- {c.name} ({c.status})\n" + c.logs(tail=LOG_LINES).decode(errors="replace")
                         for c in sorted(containers, key=lambda c: c.name)) or "(no containers)"
    except Exception as exc:  # noqa: BLE001 - the report says why the logs are missing, the failure stands
        return f"(logs not read: {exc})"
