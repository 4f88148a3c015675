"""Which orchestrator a site runs on: a render input recorded in kitctl.lock like `--replicas`.

`kitctl up --orchestrator swarm` records it; a later `up` without the flag keeps it. Switching a site
whose stack runs (containers on the engine, or Swarm services) is refused: the other orchestrator would
start a second database on the same volume name beside the first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    from docker import APIClient

ORCHESTRATORS = ("engine", "swarm")
DEFAULT = "engine"


def checked(value: str | None) -> str | None:
    """The flag's value, or one line (exit 2) naming the choices."""
    if value is not None and value not in ORCHESTRATORS:
        raise InvalidInput(f"--orchestrator must be one of: {', '.join(ORCHESTRATORS)}")
    return value


def recorded(site_dir: Path) -> str | None:
    """The orchestrator kitctl.lock recorded; None for a site never rendered (or rendered before it was one)."""
    try:
        inputs = json.loads(SiteDir(site_dir).lock_file.read_text(encoding="utf-8")).get("inputs")
    except (OSError, ValueError, AttributeError):
        return None
    value = inputs.get("orchestrator") if isinstance(inputs, dict) else None
    return value if value in ORCHESTRATORS else None


def deployed_on(api: "APIClient", project: str) -> str | None:
    """What runs the project on this engine now: "swarm" (services), "engine" (containers), or None."""
    from kitctl.deploy.state import project_containers
    from kitctl.deploy.swarm.definitions import STACK_LABEL
    from kitctl.deploy.swarm.down import is_swarm_manager

    if is_swarm_manager(api) and api.services(filters={"label": f"{STACK_LABEL}={project}"}):
        return "swarm"
    if project_containers(api, project):
        return "engine"
    return None


def refuse_switch(wanted: str | None, site_dir: Path, running: str | None) -> None:
    """One line (exit 2) when `wanted` differs from what the deployed site runs on; nothing otherwise."""
    if wanted is None or running is None or wanted == running:
        return
    raise InvalidInput(f"{Path(site_dir).name} is deployed with --orchestrator {running}: switching to {wanted} is "
                       f"refused (back up, `kitctl down`, then `up --orchestrator {wanted}`)")


def check_switch(wanted: str | None, site_dir: Path, host: str | None) -> None:
    """Before rendering: refuse `--orchestrator X` on a site whose stack runs on the other one."""
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect

    if wanted is None or recorded(site_dir) == wanted or not SiteDir(site_dir).compose.is_file():
        return
    project = load_project(site_dir)
    refuse_switch(wanted, site_dir, deployed_on(connect(host).api, project.name))
