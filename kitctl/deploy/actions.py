"""Diff what should run against what runs: one action per service, no engine calls.

Pure functions over plain values, so the decisions (create, recreate, start,
leave alone; start-first or stop-first) are unit-tested without Docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from kitctl.deploy.compose import Project, Service
from kitctl.deploy.order import start_order
from kitctl.deploy.state import Running

Kind = Literal["create", "recreate", "start", "keep"]
Strategy = Literal["start-first", "stop-first"]


@dataclass(frozen=True)
class ServiceAction:
    service: str
    kind: Kind
    reason: str
    strategy: Strategy | None = None
    old: Running | None = None

    @property
    def changes_anything(self) -> bool:
        return self.kind != "keep"


def strategy_for(service: Service) -> Strategy:
    """Start the new container beside the old one unless they would collide.

    Two containers cannot publish the same host port, and two copies of a
    stateful server (PostgreSQL) must never share a writable data volume, so
    those services stop the old container first; it is restarted on rollback.
    """
    if service.ports or service.writes_named_volume():
        return "stop-first"
    return "start-first"


def plan_services(project: Project, hashes: Mapping[str, tuple[str, str]], current: Mapping[str, Running],
                  image_ids: Mapping[str, str | None], only: set[str] | None = None,
                  force: set[str] | None = None) -> list[ServiceAction]:
    """One action per service, in start (dependency) order."""
    deps = {name: svc.dependency_names() for name, svc in project.services.items()}
    actions = []
    for name in start_order(deps):
        if only is not None and name not in only:
            continue
        actions.append(_action(project.services[name], hashes[name], current.get(name),
                               image_ids.get(project.services[name].image), name in (force or set())))
    return actions


def _action(service: Service, hashes: tuple[str, str], old: Running | None, image_id: str | None, forced: bool) -> ServiceAction:
    if old is None:
        return ServiceAction(service.name, "create", "new service")
    reason = None
    if forced:
        reason = "recreate requested"
    elif old.config_hash != hashes[0]:
        reason = "config changed"
    elif old.mounts_hash != hashes[1]:
        reason = "mounted files changed"
    elif image_id and old.image_id and old.image_id != image_id:
        reason = "image changed"
    if reason:
        return ServiceAction(service.name, "recreate", reason, strategy_for(service), old)
    if old.state != "running":
        return ServiceAction(service.name, "start", f"was {old.state}", old=old)
    return ServiceAction(service.name, "keep", "unchanged", old=old)


def orphans(project: Project, current: Mapping[str, Running]) -> list[Running]:
    """Containers of the project whose service is no longer in the compose file."""
    return [c for name, c in sorted(current.items()) if name not in project.services]


def summary(actions: list[ServiceAction]) -> str:
    changed = [a for a in actions if a.changes_anything]
    if not changed:
        return "nothing to do: every service is up to date"
    return ", ".join(f"{a.kind} {a.service}" for a in changed)
