"""A Swarm service's running tasks and their containers on the node the API speaks to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitctl.deploy.compose import SITE_LABEL
from kitctl.deploy.swarm.definitions import IMAGE_LABEL, STACK_LABEL, service_name

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Project


def running_containers(api: "APIClient", service: str) -> list[str]:
    """Container ids of the service's running tasks on the node the API speaks to: a task on another node
    has a container id too, but this engine cannot exec in it (404)."""
    here = (api.info().get("Swarm") or {}).get("NodeID")
    tasks = api.tasks(filters={"service": service, "desired-state": "running", "node": here})
    return [t["Status"]["ContainerStatus"]["ContainerID"] for t in tasks
            if t.get("NodeID") == here and t.get("Status", {}).get("State") == "running"
            and t["Status"].get("ContainerStatus", {}).get("ContainerID")]


def running_container(api: "APIClient", service: str) -> str | None:
    """One running task's container (the storefront's for `create-admin`), None when none runs."""
    found = running_containers(api, service)
    return found[0] if found else None


def task_container_filter(project: "Project", service: str) -> dict[str, Any]:
    """Running containers of the service's Swarm tasks on this node (status, logs, psql in the db…)."""
    return {"status": "running", "label": [f"{STACK_LABEL}={project.name}", f"com.kitctl.service={service}",
                                           f"{SITE_LABEL}={project.site_id}"]}


def swarm_status(api: "APIClient", project: "Project") -> list[dict[str, Any]]:
    """One row per Swarm service of the site (ServiceStatus's fields); [] when it runs none (or no Swarm)."""
    from kitctl.deploy.swarm.converge import verdict
    from kitctl.deploy.swarm.down import is_swarm_manager

    if not is_swarm_manager(api):
        return []
    rows = []
    for svc in sorted(api.services(filters={"label": f"{STACK_LABEL}={project.name}"}), key=lambda s: s["Spec"]["Name"]):
        tasks = api.tasks(filters={"service": svc["ID"]})
        wanted = svc["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas", 1)
        running = sum(1 for t in tasks if t.get("DesiredState") == "running" and t["Status"].get("State") == "running")
        found = verdict(svc, tasks)
        ports = [f"*:{p['PublishedPort']}->{p['TargetPort']}/{p['Protocol']}"
                 for p in (svc.get("Endpoint") or {}).get("Ports") or [] if p.get("PublishedPort")]
        rows.append({"service": svc["Spec"]["Labels"].get("com.kitctl.service", svc["Spec"]["Name"]),
                     "container": f"{svc['Spec']['Name']} ({running}/{wanted} tasks)",
                     "image": svc["Spec"]["Labels"].get(IMAGE_LABEL, "?"),
                     "state": "running" if running else "missing",
                     "health": {"converged": "healthy", "rolled_back": "rolled back"}.get(found.state, found.detail),
                     "uptime_seconds": None, "ports": sorted(ports)})
    return rows
