"""A parsed service → the Engine API's create-container arguments (docker-py low-level)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from kitctl.deploy.compose import Project, Service
from kitctl.deploy.labels import container_labels

if TYPE_CHECKING:
    from docker import APIClient

NANO = 1_000_000_000


def create_kwargs(api: "APIClient", project: Project, service: Service, hashes: tuple[str, str],
                  name: str, host_path: Callable[[str], str] = lambda p: p) -> dict[str, Any]:
    """Arguments for `api.create_container`; `hashes` = (config, mounts);
    `host_path` maps a bind source onto the target host."""
    first_net_key, first_aliases = service.networks[0]
    first_net = project.networks[first_net_key].name
    networking = api.create_networking_config({
        first_net: api.create_endpoint_config(aliases=[service.name, *first_aliases]),
    })
    return {
        "image": service.image,
        "name": name,
        "command": list(service.command) if service.command is not None else None,
        "entrypoint": list(service.entrypoint) if service.entrypoint is not None else None,
        "environment": dict(service.environment),
        "labels": container_labels(project, service.name, *hashes, dict(service.labels)),
        "user": service.user,
        "ports": [(p.container_port, p.protocol) for p in service.ports] or None,
        "healthcheck": healthcheck(service),
        "host_config": api.create_host_config(**host_config(project, service, host_path)),
        "networking_config": networking,
        "detach": True,
    }


def extra_networks(project: Project, service: Service) -> list[tuple[str, list[str]]]:
    """Networks beyond the first, connected after create: (engine name, aliases)."""
    return [(project.networks[key].name, [service.name, *aliases]) for key, aliases in service.networks[1:]]


def healthcheck(service: Service) -> dict[str, Any] | None:
    check = service.healthcheck
    if check is None:
        return None
    return {
        "test": list(check.test),
        "interval": int(check.interval * NANO),
        "timeout": int(check.timeout * NANO),
        "retries": check.retries,
        "start_period": int(check.start_period * NANO),
    }


def host_config(project: Project, service: Service, host_path: Callable[[str], str]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "mounts": [_mount(project, m, host_path) for m in service.mounts
                   if m.kind != "secret" or not secrets_copied(service)],
        "port_bindings": _port_bindings(service),
        "restart_policy": _restart_policy(service.restart),
        "read_only": service.read_only or None,
        "tmpfs": {t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "") for t in service.tmpfs} or None,
        "extra_hosts": {h.split(":", 1)[0]: h.split(":", 1)[1] for h in service.extra_hosts} or None,
        "cap_drop": list(service.cap_drop) or None,
        "cap_add": list(service.cap_add) or None,
        "security_opt": list(service.security_opt) or None,
        "init": None,
    }
    if service.cpus is not None:
        config["nano_cpus"] = int(service.cpus * NANO)
    if service.memory is not None:
        config["mem_limit"] = service.memory
    return {k: v for k, v in config.items() if v is not None}


def secrets_copied(service: Service) -> bool:
    """Secrets are copied into the container (as its user) unless its root filesystem is read-only."""
    return not service.read_only


def _mount(project: Project, mount, host_path: Callable[[str], str]):
    from docker.types import Mount

    if mount.kind == "volume":
        return Mount(mount.target, project.volumes[mount.source].name, type="volume", read_only=mount.read_only)
    return Mount(mount.target, host_path(mount.source), type="bind", read_only=mount.read_only)


def _port_bindings(service: Service) -> dict[str, Any] | None:
    bindings: dict[str, Any] = {}
    for port in service.ports:
        key = f"{port.container_port}/{port.protocol}"
        bindings.setdefault(key, []).append((port.host_ip, port.host_port) if port.host_port else (port.host_ip,))
    return bindings or None


def _restart_policy(restart: str) -> dict[str, Any] | None:
    if restart == "no":
        return None
    if restart.startswith("on-failure"):
        _, _, count = restart.partition(":")
        return {"Name": "on-failure", "MaximumRetryCount": int(count or 0)}
    return {"Name": restart}
