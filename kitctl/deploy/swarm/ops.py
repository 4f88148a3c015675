"""backup, restore and upgrade on a Swarm site: which orchestrator a site runs on, and where its tasks are.

A site deployed with `up --orchestrator swarm` has no containers of its own name, only Swarm tasks. The
operate commands find it by its services (the stack label on a manager). The database runs on the node
its label pins it to, and its volume is a local volume there: a dump is taken in, and a restore is
loaded into, the task running on that node, so kitctl must talk to that node's engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kitctl.deploy.swarm.definitions import STACK_LABEL, db_node_label, service_name
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Project

SWARM = "swarm"
ENGINE = "engine"


def orchestrator_of(api: "APIClient", project: "Project") -> str:
    """"swarm" when the engine is a Swarm manager running services of this site, else "engine"."""
    from kitctl.deploy.swarm.down import is_swarm_manager

    if is_swarm_manager(api) and api.services(filters={"label": f"{STACK_LABEL}={project.name}"}):
        return SWARM
    return ENGINE


def require_task_here(api: "APIClient", project: "Project", service: str) -> None:
    """InvalidInput (one line) unless a running task of `service` is on the node kitctl talks to."""
    here = (api.info().get("Swarm") or {}).get("NodeID")
    tasks = [t for t in api.tasks(filters={"service": service_name(project, service), "desired-state": "running"})
             if t.get("Status", {}).get("State") == "running"]
    if not tasks:
        raise InvalidInput(f"service {service!r} has no running Swarm task: run `kitctl up --orchestrator swarm` first")
    if not any(t.get("NodeID") == here for t in tasks):
        node = api.inspect_node(tasks[0]["NodeID"])
        name = node.get("Description", {}).get("Hostname") or tasks[0]["NodeID"]
        raise InvalidInput(f"service {service!r} runs on Swarm node {name}, not on the engine kitctl talks to: "
                           f"pass --docker-host for that node's engine")


def check_fresh_swarm(api: "APIClient", project: "Project") -> None:
    """A Swarm restore needs a manager, no services of the site and none of its volumes on this node."""
    from docker.errors import NotFound

    from kitctl.deploy.swarm.down import is_swarm_manager

    if not is_swarm_manager(api):
        raise InvalidInput("this backup is of a Swarm site: restore it on a Swarm manager (`docker swarm init`), "
                           "or restore the site directory by hand for one engine")
    if api.services(filters={"label": f"{STACK_LABEL}={project.name}"}):
        raise InvalidInput(f"project {project.name} already runs Swarm services here; restore needs a fresh site "
                           "(or `kitctl down --volumes` first)")
    for vol in project.volumes.values():
        try:
            api.inspect_volume(vol.name)
        except NotFound:
            continue
        raise InvalidInput(f"volume {vol.name} already exists; restore needs a fresh host (or `kitctl down --volumes` first)")


def pin_db_here(api: "APIClient", project: "Project") -> None:
    """The restored volumes are made on this node, so the database must run here: refuse when another node
    carries the site's database label (its volume would be there), label this one otherwise."""
    key = db_node_label(project.site_id or "")
    here = (api.info().get("Swarm") or {}).get("NodeID")
    elsewhere = [n for n in api.nodes() if key in (n["Spec"].get("Labels") or {}) and n["ID"] != here]
    if elsewhere:
        name = elsewhere[0].get("Description", {}).get("Hostname") or elsewhere[0]["ID"]
        raise InvalidInput(f"Swarm node {name} carries {key}: restore through that node's engine (--docker-host)")
    spec = api.inspect_node(here)
    labels = {**(spec["Spec"].get("Labels") or {}), key: "true"}
    if labels != (spec["Spec"].get("Labels") or {}):
        api.update_node(here, spec["Version"]["Index"], {**spec["Spec"], "Labels": labels})


def only(project: "Project", services: list[str]) -> "Project":
    """The project with just these services (the database alone, while a restore loads its dump)."""
    import dataclasses

    return dataclasses.replace(project, services={n: s for n, s in project.services.items() if n in services})


def require_backup_tasks_here(api: "APIClient", project: "Project", db_service: str) -> None:
    """The dump is taken in the database's task and the other volumes read from their services' tasks:
    each must run on the node kitctl talks to (one line naming the node otherwise)."""
    from kitctl.deploy.backup_volumes import volume_mounts

    for service in sorted({db_service, *(s for s, _target in volume_mounts(project, db_service).values())}):
        require_task_here(api, project, service)
