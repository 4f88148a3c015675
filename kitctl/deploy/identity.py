"""Which engine resources are this site's: the site id on their labels, not the names they happen to have.

A site runs as the compose project `kit-<site id>` and every container, network
and volume kitctl creates carries `com.kitctl.site=<site id>`. Before `up`,
`down`, `status`, `logs`, `backup` or `upgrade` touch anything, `check_ours`
refuses (one line, exit 2) when a resource under this site's names belongs to
another site. A site deployed before this rule ran as the project named after
its folder; `find_legacy` finds those containers by their site label and
`adopt` takes them over once: the volumes they mount are recorded (and keep
their names and data), the old containers and network go, and `up` creates
the new ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kitctl.deploy import labels as L
from kitctl.deploy.order import stop_order
from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Project


@dataclass(frozen=True)
class Legacy:
    """This site's containers under its old, folder-named project, and the volumes they mount (key → name)."""

    project: str
    containers: list[dict[str, Any]] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        kept = ", ".join(sorted(self.volumes.values())) or "none"
        return f"adopting this site's containers from the old project {self.project!r} (volumes kept: {kept})"


def check_ours(api: "APIClient", project: "Project") -> None:
    """InvalidInput when a container, network or volume under this site's names belongs to another site."""
    if project.site_id is None:
        return  # a stack kitctl did not render: its folder's name is all there is
    for c in api.containers(all=True, filters={"label": [f"{L.PROJECT}={project.name}"]}):
        _owned(project, "container", c["Names"][0].lstrip("/"), c.get("Labels"))
    for net in project.networks.values():
        for found in ([] if net.external else api.networks(names=[net.name])):
            if found.get("Name") == net.name:
                _owned(project, "network", net.name, found.get("Labels"))
    for vol in project.volumes.values():
        if not vol.external and vol.name not in project.adopted_volumes:
            labels = _volume_labels(api, vol.name)
            if labels is not None:
                _owned(project, "volume", vol.name, labels)


def _owned(project: "Project", kind: str, name: str, labels: dict[str, str] | None) -> None:
    owner = (labels or {}).get(L.SITE)
    if owner != project.site_id:
        who = f"site {owner!r}" if owner else "no site kitctl knows"
        raise InvalidInput(f"{kind} {name} belongs to {who}, not to site {project.site_id!r}: "
                           "refusing to touch it (nothing was changed)")


def _volume_labels(api: "APIClient", name: str) -> dict[str, str] | None:
    from docker.errors import NotFound

    try:
        return api.inspect_volume(name).get("Labels") or {}
    except NotFound:
        return None


def is_ours(project: "Project", labels: dict[str, str] | None) -> bool:
    """A container of this stack: its project, or (before adoption) its site id under the old project."""
    labels = labels or {}
    return labels.get(L.PROJECT) == project.name or (
        project.site_id is not None and labels.get(L.SITE) == project.site_id)


def find_legacy(api: "APIClient", project: "Project") -> Legacy | None:
    """This site's containers under its folder-named project, if it still runs there."""
    if project.site_id is None or project.legacy_name == project.name:
        return None
    found = api.containers(all=True, filters={"label": [f"{L.PROJECT}={project.legacy_name}",
                                                         f"{L.SITE}={project.site_id}"]})
    if not found:
        return None
    return Legacy(project.legacy_name, found, _mounted_volumes(project, found))


def _mounted_volumes(project: "Project", containers: list[dict[str, Any]]) -> dict[str, str]:
    """The compose volume each old container mounts at a target the service still mounts a volume on."""
    kept: dict[str, str] = {}
    for c in containers:
        service = project.services.get((c.get("Labels") or {}).get(L.SERVICE, ""))
        if service is None:
            continue
        targets = {m.target: m.source for m in service.mounts if m.kind == "volume"}
        for mount in c.get("Mounts") or []:
            key = targets.get(mount.get("Destination", ""))
            if mount.get("Type") == "volume" and key and not project.volumes[key].external:
                kept[key] = mount["Name"]
    return kept


def adopt(api: "APIClient", project: "Project", legacy: Legacy) -> list[str]:
    """Take the site over from its old project once: record its volumes, remove its old containers and network.

    The record is written first, so an interruption never loses track of the data.
    """
    record = SiteDir(project.working_dir).adopted
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps({"from_project": legacy.project, "volumes": legacy.volumes}, indent=2) + "\n")
    os.replace(tmp, record)
    done = [legacy.describe()]
    by_service: dict[str, list[str]] = {}
    for c in legacy.containers:
        by_service.setdefault((c.get("Labels") or {}).get(L.SERVICE, "?"), []).append(c["Id"])
    order = stop_order({n: s.dependency_names() for n, s in project.services.items()})
    for name in order + sorted(set(by_service) - set(order)):
        for cid in by_service.get(name, []):
            api.stop(cid, timeout=20)
            api.remove_container(cid, force=True)
            done.append(f"removed old container of {name} ({legacy.project})")
    done += _remove_empty_network(api, f"{legacy.project}_default", legacy.project)
    return done


def _remove_empty_network(api: "APIClient", name: str, legacy_project: str) -> list[str]:
    """The old project's network goes only when nothing (another site's containers) is still attached."""
    for net in api.networks(names=[name]):
        if net.get("Name") != name or (net.get("Labels") or {}).get(L.PROJECT) != legacy_project:
            continue
        if api.inspect_network(net["Id"]).get("Containers"):
            return []
        api.remove_network(net["Id"])
        return [f"removed old network {name}"]
    return []
