"""A Swarm service's running tasks and their containers on the node the API speaks to."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker import APIClient


def running_containers(api: "APIClient", service: str) -> list[str]:
    """Container ids of the service's running tasks (those placed on any node; exec works on this one's)."""
    tasks = api.tasks(filters={"service": service, "desired-state": "running"})
    return [t["Status"]["ContainerStatus"]["ContainerID"] for t in tasks
            if t.get("Status", {}).get("State") == "running" and t["Status"].get("ContainerStatus", {}).get("ContainerID")]


def running_container(api: "APIClient", service: str) -> str | None:
    """One running task's container (the storefront's for `create-admin`), None when none runs."""
    found = running_containers(api, service)
    return found[0] if found else None
