"""A parsed compose project → what a Swarm runs, as plain values (no engine needed to compute it).

Swarm cannot bind a file from the site directory on every node, so each bound
file becomes a config and each `file:` secret a Swarm secret. Both are
immutable: their names carry a hash of the content, so a changed file is a new
config and the service that mounts it rolls over to it. Tasks run the image by its id: the engine
does not try a registry for it, a re-tagged reference is an update, and a rollback runs the very
image the previous tasks ran. The service's own spec
hash (`io.kitctl.spec-hash`) makes a second `up` with nothing changed a no-op.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from kitctl.deploy.compose import SITE_LABEL, Project, Service, read_bounded
from kitcore.errors import InvalidInput

MAX_CONFIG_BYTES = 500 * 1024  # Swarm's own limit for a config or a secret
STACK_LABEL = "com.docker.stack.namespace"  # what `docker stack ps` groups by
SPEC_HASH = "io.kitctl.spec-hash"
IMAGE_LABEL = "io.kitctl.image"  # the reference the site names; tasks run the image id it had at `up`
ROLE_LABEL = "io.kitctl.swarm-role"  # "config" or "secret" on the files kitctl creates
MONITOR_SECONDS = 10.0  # a task that fails within this much of turning healthy fails the update


@dataclass(frozen=True)
class FileDef:
    """One Swarm config or secret: its engine name, content and where a service reads it."""

    name: str
    data: bytes = field(repr=False)
    kind: str  # "config" | "secret"


@dataclass(frozen=True)
class FileRef:
    name: str
    target: str  # absolute path for configs; the file name under /run/secrets for secrets
    uid: int = 0
    gid: int = 0
    mode: int = 0o444


@dataclass(frozen=True)
class VolumeRef:
    source: str  # engine name
    target: str
    read_only: bool = False
    driver_opts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # set when the engine creates it: whose volume it is (`down` checks)


@dataclass(frozen=True)
class ServiceDef:
    name: str  # engine name: <project>_<service>
    service: str  # compose name, also its DNS alias on the stack's network
    image: str
    replicas: int
    command: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    environment: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    configs: tuple[FileRef, ...]
    secrets: tuple[FileRef, ...]
    volumes: tuple[VolumeRef, ...]
    tmpfs: tuple[str, ...]
    ports: tuple[tuple[int, int, str], ...]  # (published, target, protocol), host mode
    networks: tuple[str, ...]  # engine names
    constraints: tuple[str, ...]
    healthcheck: tuple[tuple[str, ...], float, float, int, float] | None  # test, interval, timeout, retries, start
    order: str  # "start-first" | "stop-first"
    user: str | None = None
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()  # "IP name"
    cpus: float | None = None
    memory: int | None = None
    dependencies: tuple[str, ...] = ()
    restart: str = "any"  # Swarm's restart condition: "any" | "on-failure" (a clean exit stays down)

    def spec_hash(self) -> str:
        spec = asdict(self)
        if spec["restart"] == "any":
            del spec["restart"]  # the default is left out: services deployed before it existed keep their hash
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class StackDefs:
    network: str
    services: dict[str, ServiceDef]
    files: dict[str, FileDef]  # engine name → config or secret
    labels: dict[str, str]  # on every object kitctl creates


def db_node_label(site_id: str) -> str:
    """The node label that pins the site's database (and so its volume) to one node."""
    return f"com.kitctl.db.{site_id}"


def service_name(project: Project, service: str) -> str:
    return f"{project.name}_{service}"


def stack_labels(project: Project) -> dict[str, str]:
    labels = {STACK_LABEL: project.name}
    if project.site_id:
        labels[SITE_LABEL] = project.site_id
    return labels


def stack_defs(project: Project, owners: Mapping[str, tuple[int, int, int]],
               image_ids: Mapping[str, str | None]) -> StackDefs:
    """Everything the stack needs; `owners` = service → (uid, gid, mode) of its secrets (its user's)."""
    network = f"{project.name}_default"
    files: dict[str, FileDef] = {}
    services = {name: _service(project, svc, network, owners.get(name, (0, 0, 0o400)), image_ids.get(svc.image), files)
                for name, svc in project.services.items()}
    return StackDefs(network, services, files, stack_labels(project))


def update_order(service: Service) -> str:
    """Start-first unless two tasks would collide: a host port (one per node) or a written named volume."""
    return "stop-first" if service.ports or service.writes_named_volume() else "start-first"


def _service(project: Project, svc: Service, network: str, owner: tuple[int, int, int], image_id: str | None,
             files: dict[str, FileDef]) -> ServiceDef:
    configs: list[FileRef] = []
    secrets: list[FileRef] = []
    volumes: list[VolumeRef] = []
    for mount in svc.mounts:
        if mount.kind == "volume":
            volume = project.volumes[mount.source]
            labels = stack_labels(project) | {"com.docker.compose.project": project.name,
                                              "com.docker.compose.volume": mount.source}
            volumes.append(VolumeRef(volume.name, mount.target, mount.read_only, volume.driver_opts,
                                     tuple(sorted(labels.items()))))
        elif mount.kind == "secret":
            data = _read(Path(mount.source), svc.name)
            item = FileDef(_file_name(project, "s", mount.target, data), data, "secret")
            files[item.name] = item
            secrets.append(FileRef(item.name, Path(mount.target).name, owner[0], owner[1], owner[2]))
        else:
            for target, data in _bound_files(Path(mount.source), mount.target, svc.name):
                item = FileDef(_file_name(project, "c", target, data), data, "config")
                files[item.name] = item
                configs.append(FileRef(item.name, target))
    labels = dict(svc.labels) | stack_labels(project) | {IMAGE_LABEL: svc.image}
    extra = [project.networks[key].name for key, _ in svc.networks if key != "default"]
    check = svc.healthcheck
    return ServiceDef(
        name=service_name(project, svc.name), service=svc.name, image=image_id or svc.image, replicas=svc.replicas,
        command=svc.command, entrypoint=svc.entrypoint, environment=svc.environment,
        labels=tuple(sorted(labels.items())), configs=tuple(configs), secrets=tuple(secrets), volumes=tuple(volumes),
        tmpfs=svc.tmpfs, ports=tuple((p.host_port or p.container_port, p.container_port, p.protocol) for p in svc.ports),
        networks=(network, *extra),
        constraints=(f"node.labels.{db_node_label(project.site_id)}==true",) if svc.name == "db" and project.site_id else (),
        healthcheck=None if check is None else (check.test, check.interval, check.timeout, check.retries, check.start_period),
        order=update_order(svc), user=svc.user, read_only=svc.read_only, cap_add=svc.cap_add, cap_drop=svc.cap_drop,
        hosts=tuple(f"{h.split(':', 1)[1]} {h.split(':', 1)[0]}" for h in svc.extra_hosts),
        cpus=svc.cpus, memory=svc.memory, dependencies=tuple(sorted(svc.dependency_names())),
    )


def _bound_files(source: Path, target: str, service: str) -> list[tuple[str, bytes]]:
    """A bound file, or every file under a bound directory, as (path in the container, content)."""
    if source.is_file():
        return [(target, _read(source, service))]
    if not source.is_dir():
        raise InvalidInput(f"services.{service}: {source} is neither a file nor a directory")
    return [(f"{target.rstrip('/')}/{p.relative_to(source).as_posix()}", _read(p, service))
            for p in sorted(source.rglob("*")) if p.is_file()]


def _read(path: Path, service: str) -> bytes:
    return read_bounded(path, MAX_CONFIG_BYTES, f"services.{service}: ", "a Swarm config may be: ")


def _file_name(project: Project, kind: str, target: str, data: bytes) -> str:
    """Stable for the same content at the same place; new when either changes (configs are immutable)."""
    digest = hashlib.sha256(target.encode() + b"\0" + data).hexdigest()[:16]
    return f"{project.name[:44]}_{kind}_{digest}"
