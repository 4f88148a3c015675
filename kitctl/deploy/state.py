"""What runs now: the project's containers as the engine reports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kitctl.deploy import labels as L

if TYPE_CHECKING:
    from docker import APIClient

OLD_SUFFIX = "_kitctl_old"


@dataclass(frozen=True)
class Running:
    """One existing container of a service."""

    id: str
    name: str
    service: str
    config_hash: str
    mounts_hash: str
    image_id: str
    state: str  # running | exited | created | ...
    health: str | None  # healthy | unhealthy | starting | None (no healthcheck)

    @property
    def is_leftover(self) -> bool:
        """A previous container an interrupted update renamed aside."""
        return self.name.endswith(OLD_SUFFIX)


def project_containers(api: "APIClient", project_name: str) -> list[Running]:
    """Every service container of the project, running or not (one list call)."""
    return running_from_list(api.containers(all=True, filters=L.project_filter(project_name)))


def running_from_list(listed: list[dict[str, Any]]) -> list[Running]:
    """The engine's container list (GET /containers/json) as plain values."""
    found = []
    for c in listed:
        labels = c.get("Labels") or {}
        status = c.get("Status", "")
        health = None
        for word in ("healthy", "unhealthy", "health: starting"):
            if f"({word})" in status:
                health = word.replace("health: ", "")
        found.append(Running(
            id=c["Id"],
            name=(c.get("Names") or ["/?"])[0].lstrip("/"),
            service=labels.get(L.SERVICE, "?"),
            config_hash=labels.get(L.CONFIG_HASH, ""),
            mounts_hash=labels.get(L.MOUNTS_HASH, ""),
            image_id=c.get("ImageID", ""),
            state=c.get("State", "unknown"),
            health=health,
        ))
    return found


def by_service(containers: list[Running]) -> tuple[dict[str, Running], list[Running]]:
    """(current container per service, leftovers from interrupted updates)."""
    current: dict[str, Running] = {}
    leftovers: list[Running] = []
    for c in containers:
        if c.is_leftover:
            leftovers.append(c)
        else:
            current[c.service] = c
    return current, leftovers
