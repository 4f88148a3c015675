"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

from tests.deploy.stack import LOGO_PNG
from tests.support.kit_stack import Stack, engine_with_kit_images, launch_stack, new_stack, remove_stack

if TYPE_CHECKING:
    from tests.support import swarm_engine


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


SWARM_IMAGES = ("db", "storefront", "agent", "proxy", "hq")


@pytest.fixture(scope="session")
def swarm_engine_session() -> Iterator["swarm_engine.SwarmEngine"]:
    """One private Swarm engine (tests/support/swarm_engine.py) with the kit's images, for every Swarm module
    of the session (test_swarm, test_swarm_hq): starting one and copying the images in costs half a minute."""
    from kitcore import __version__
    from tests.conftest import require
    from tests.support import swarm_engine

    why = swarm_engine.available()
    require(why is None, why or "")
    engine_with_kit_images()
    started = swarm_engine.start([f"kitctl/{s}:{__version__}" for s in SWARM_IMAGES])
    try:
        yield started
    finally:
        swarm_engine.stop(started)
