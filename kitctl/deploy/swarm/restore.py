"""`kitctl restore` of a backup taken from a Swarm site: onto a Swarm manager, through services.

The same order as on one engine (kitctl.deploy.backup.restore): the database's service alone (pinned to this
node, where the restored volumes are made), its dump loaded into its task and the other volumes seeded by the
caller, then the whole site by `up --orchestrator swarm`, which keeps the database's service as it is (same
spec) and creates the rest.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from kitctl.deploy.swarm.ops import SWARM, only, pin_db_here

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.compose import Project
    from kitctl.deploy.report import Reporter
    from kitctl.deploy.up import UpOptions


def start_database(client: "docker.DockerClient", project: "Project", db_service: str, options: "UpOptions",
                   reporter: "Reporter") -> None:
    """The database's service alone, converged healthy on this node (the site directory already in place)."""
    from kitctl.deploy.rendered_site import verified_licence
    from kitctl.deploy.swarm.rollout import swarm_up

    verified_licence(project.working_dir, options.licence, options.hq_keys)  # before anything is created
    pin_db_here(client.api, project)
    swarm_up(client.api, only(project, [db_service]), options.timeout, reporter.note)


def start_site(project: "Project", options: "UpOptions", reporter: "Reporter") -> None:
    from kitctl.deploy.up import up

    up(dataclasses.replace(options, site_dir=project.working_dir, services=None, orchestrator=SWARM), reporter)
