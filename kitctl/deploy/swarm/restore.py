"""`kitctl restore` of a backup taken from a Swarm site: onto a Swarm manager, through services.

The same order as on one engine: the database's service alone (pinned to this node, where the restored
volumes are made), its dump loaded into its task, the other volumes seeded, then the whole site by
`up --orchestrator swarm`, which keeps the database's service as it is (same spec) and creates the rest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitctl.deploy.swarm.ops import SWARM, only, pin_db_here

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.compose import Project
    from kitctl.deploy.report import Reporter
    from kitctl.deploy.up import UpOptions


def restore_services(client: "docker.DockerClient", project: "Project", manifest: dict[str, Any], unpacked: Path,
                     options: "UpOptions", reporter: "Reporter") -> None:
    """The site's services from an unpacked backup (the site directory already in place at `project`)."""
    from kitctl.deploy.backup import load_dump
    from kitctl.deploy.backup_volumes import seed_volumes
    from kitctl.deploy.rendered_site import verified_licence
    from kitctl.deploy.swarm.rollout import swarm_up
    from kitctl.deploy.up import up

    db = manifest["db"]
    verified_licence(project.working_dir, options.licence, options.hq_keys)  # before anything is created
    pin_db_here(client.api, project)
    swarm_up(client.api, only(project, [db["service"]]), options.timeout, reporter.note)
    load_dump(client, project, unpacked / db["file"], db["service"], db["database"])
    reporter.note(f"database {db['database']} restored ({db['bytes']} bytes)")
    seed_volumes(client, project, manifest.get("volumes", {}), unpacked, project.services[db["service"]].image, reporter)
    up(dataclasses.replace(options, site_dir=project.working_dir, services=None, orchestrator=SWARM), reporter)
