"""`kitctl down` on a Swarm site: its services (dependents first), then its configs, secrets and network.

Only objects carrying the stack's namespace label are touched; the database's node label stays (the
volume it points at stays too unless `--volumes`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kitctl.deploy.order import stop_order
from kitctl.deploy.swarm.definitions import ROLE_LABEL, STACK_LABEL

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Project

GONE_SECONDS = 60.0  # how long the removed services' containers may take to stop


def is_swarm_manager(api: "APIClient") -> bool:
    swarm = api.info().get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def swarm_down(api: "APIClient", project: "Project") -> list[str]:
    """Remove the stack's services and what only they used; the lines say what went."""
    if not is_swarm_manager(api):
        return []
    stack = f"{STACK_LABEL}={project.name}"
    services = {s["Spec"]["Labels"].get("com.kitctl.service") or s["Spec"]["Name"]: s
                for s in api.services(filters={"label": stack})}
    if not services:
        return []
    order = stop_order({n: s.dependency_names() for n, s in project.services.items()})
    done = []
    for name in [n for n in order if n in services] + sorted(set(services) - set(order)):
        api.remove_service(services[name]["ID"])
        done.append(f"removed swarm service {services[name]['Spec']['Name']}")
    wait_gone(api, [s["ID"] for s in services.values()])
    for kind, listing, remove in (("config", api.configs, api.remove_config), ("secret", api.secrets, api.remove_secret)):
        for item in listing(filters={"label": [stack, f"{ROLE_LABEL}={kind}"]}):
            remove(item["ID"])
            done.append(f"removed swarm {kind} {item['Spec']['Name']}")
    for net in api.networks(filters={"label": stack}):
        api.remove_network(net["Id"])
        done.append(f"removed network {net['Name']}")
    return done


def wait_gone(api: "APIClient", service_ids: list[str]) -> None:
    """Until no container of these removed services is left on this node (a network or volume in use cannot
    be removed). Only theirs: a container that merely carries the stack's label is no reason to wait."""
    end = time.monotonic() + GONE_SECONDS
    while any(api.containers(all=True, filters={"label": f"com.docker.swarm.service.id={sid}"}) for sid in service_ids) \
            and time.monotonic() < end:
        time.sleep(0.5)
