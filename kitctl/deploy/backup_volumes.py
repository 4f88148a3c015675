"""The stack's volumes in a backup, besides the database's: the proxy's certificates and its local CA.

The database's volume is left to `pg_dump` (a copy of a running server's files
is not a consistent database). Every other named volume is read through the
engine's archive API from a container that mounts it (owners and modes kept,
over `ssh://` too), and restored before the stack starts, by unpacking it
through a container that is created with the volume but never started.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitctl.deploy.backup_archive import VOLUMES_PREFIX, sha256
from kitctl.deploy.compose import Project

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.report import Reporter


def volume_mounts(project: Project, db_service: str) -> dict[str, tuple[str, str]]:
    """volume key → (a service that mounts it, where), for every named volume but the database's."""
    skip = {m.source for m in project.services[db_service].mounts if m.kind == "volume"}
    found: dict[str, tuple[str, str]] = {}
    for name in sorted(project.services):
        for mount in project.services[name].mounts:
            if mount.kind == "volume" and mount.source not in skip and mount.source not in found \
                    and not project.volumes[mount.source].external:
                found[mount.source] = (name, mount.target)
    return found


def save_volumes(client: "docker.DockerClient", project: Project, db_service: str,
                 tmp: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """(the manifest's `volumes`, archive name → file) for every volume `volume_mounts` names."""
    from kitctl.deploy.operate import _container

    records: dict[str, Any] = {}
    members: dict[str, Path] = {}
    for key, (service, target) in volume_mounts(project, db_service).items():
        container = _container(client, project, service, required=True)
        path = tmp / f"volume-{key}.tar"
        stream, _stat = client.api.get_archive(container, target)
        with path.open("wb") as out:
            for chunk in stream:
                out.write(chunk)
        name = f"{VOLUMES_PREFIX}{key}.tar"
        records[key] = {"file": name, "sha256": sha256(path), "service": service, "target": target}
        members[name] = path
    return records, members


def seed_volumes(client: "docker.DockerClient", project: Project, volumes: dict[str, Any], unpacked: Path,
                 helper_image: str, reporter: "Reporter") -> None:
    """Create each backed-up volume (with the stack's labels) and unpack its archive into it, before `up`.

    The unpacking container is made from `helper_image` (one the engine has) and is never started.
    """
    from docker.types import Mount

    from kitctl.deploy.steps import EnsureVolume, StepContext

    ctx = StepContext(client.api, project, {}, reporter)
    for key, record in sorted(volumes.items()):
        if key not in project.volumes:
            reporter.warn(f"the backup has volume {key!r}, which compose.yaml no longer names: not restored")
            continue
        resource = project.volumes[key]
        EnsureVolume(resource).run(ctx)
        target = str(record["target"])
        helper = client.api.create_container(
            helper_image, name=f"{project.name}_kitctl_restore_{key}", entrypoint=["true"], network_disabled=True,
            host_config=client.api.create_host_config(mounts=[Mount(target, resource.name, type="volume")]))["Id"]
        try:
            data = (unpacked / record["file"]).read_bytes()
            client.api.put_archive(helper, posixpath.dirname(target.rstrip("/")) or "/", data)
        finally:
            client.api.remove_container(helper, force=True, v=True)  # with the anonymous volume its image may declare
        reporter.note(f"volume {resource.name} restored ({len(data)} bytes)")
