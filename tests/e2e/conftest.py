"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.deploy.stack import LOGO_PNG
from tests.support.kit_stack import Stack, engine_with_kit_images, launch_stack, new_stack, remove_stack


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
