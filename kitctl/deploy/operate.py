"""Operate a deployed stack: status, logs, down. Thin functions over the engine API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

from kitctl.deploy import engine_exec
from kitctl.deploy import labels as L
from kitctl.deploy.compose import Project
from kitctl.deploy.order import stop_order
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    import docker

LICENCE_QUERY = ("SELECT licence_status || '|' || coalesce(health->>'hq_link', '') || '|' "
                 "|| coalesce(health->>'hq_link_since', '') || '|' "
                 # the end of a timed suspension: the applied suspend command's `until` (sitedb.suspension)
                 "|| coalesce((SELECT payload->>'until' FROM hq_commands WHERE type = 'suspend' "
                 "AND applied_at IS NOT NULL ORDER BY seq DESC LIMIT 1), '') "
                 "|| '|' || coalesce(status_reason, '') FROM site_state WHERE id = 1")


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    container: str
    image: str
    state: str
    health: str
    uptime_seconds: int | None
    ports: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(client: "docker.DockerClient", project: Project) -> list[ServiceStatus]:
    """One row per service of the compose file (missing ones too), in start order."""
    from kitctl.deploy.identity import check_ours
    from kitctl.deploy.order import start_order

    check_ours(client.api, project)
    found = {}
    for c in client.api.containers(all=True, filters=L.project_filter(project.name)):
        service = (c.get("Labels") or {}).get(L.SERVICE, "?")
        if c["Names"][0].endswith("_kitctl_old") and service in found:
            continue
        found[service] = c
    if not found:
        from kitctl.deploy.swarm.tasks import swarm_status

        swarm = swarm_status(client.api, project)
        if swarm:
            return [ServiceStatus(**row) for row in swarm]
    rows = []
    order = start_order({n: s.dependency_names() for n, s in project.services.items()})
    for name in order + sorted(set(found) - set(order)):
        c = found.get(name)
        if c is None:
            rows.append(ServiceStatus(name, "-", project.services[name].image, "missing", "-", None, []))
            continue
        state = client.api.inspect_container(c["Id"])["State"]
        rows.append(ServiceStatus(
            service=name,
            container=c["Names"][0].lstrip("/"),
            image=c.get("Image", "?"),
            state=state.get("Status", "?"),
            health=(state.get("Health") or {}).get("Status", "-"),
            uptime_seconds=_uptime(state) if state.get("Running") else None,
            ports=sorted(f"{p.get('IP', '')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
                         for p in c.get("Ports") or [] if p.get("PublicPort")),
        ))
    return rows


def _uptime(state: dict[str, Any]) -> int | None:
    started = state.get("StartedAt", "")
    try:
        moment = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return None
    return max(0, int((datetime.now(timezone.utc) - moment).total_seconds()))


def licence_state(client: "docker.DockerClient", project: Project, db_service: str = "db") -> dict[str, Any] | None:
    """The licence status the agent stored in the site database (active, suspended, revoked…),
    and its link to HQ (`hq`: ok, unreachable or refused, and since when; None if not recorded yet).

    Read with psql inside the db container over its local socket, so no
    password leaves the container; None when there is no db or no row yet.
    """
    text = db_query(client, project, LICENCE_QUERY, db_service)
    if text is None or text.count("|") < 4:
        return None
    state, link, since, until, reason = text.split("|", 4)
    hq = {"state": link, "since": int(since) if since.isdigit() else None} if link else None
    return {"status": state, "reason": reason or "", "hq": hq,
            "suspended_until": int(until) if until.isdigit() and state == "suspended" else None}


def db_query(client: "docker.DockerClient", project: Project, sql: str, db_service: str = "db") -> str | None:
    """The last line psql prints for `sql` inside the db container (local socket); None when it cannot answer."""
    container = _container(client, project, db_service, required=False)
    if container is None:
        return None
    env = dict(project.services[db_service].environment) if db_service in project.services else {}
    command = ["psql", "-X", "-qtA", "-U", "postgres", "-d", env.get("POSTGRES_DB", "kit"), "-c", sql]
    try:
        code, output = _exec(client, container, command)
    except Exception:  # the db may be starting; status and doctor must still answer
        return None
    text = output.strip()
    return text.splitlines()[-1] if code == 0 and text else None


def logs(client: "docker.DockerClient", project: Project, service: str, follow: bool, tail: int) -> Iterator[bytes]:
    from kitctl.deploy.identity import check_ours

    check_ours(client.api, project)
    container = _container(client, project, service, required=True)
    if follow:
        yield from client.api.logs(container, stream=True, follow=True, tail=tail)
    else:
        yield client.api.logs(container, tail=tail)


def down(client: "docker.DockerClient", project: Project, volumes: bool) -> list[str]:
    """Stop and remove the stack's containers (dependents first) and its network; volumes only if asked.

    Only this site's: another site's resource under its names is refused before anything is touched, and a
    site still running under its old folder-named project is adopted first (so `--volumes` finds its data).
    """
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.copy_reader import remove_reader
    from kitctl.deploy.identity import adopt, check_ours, find_legacy
    from kitctl.deploy.swarm.down import swarm_down

    check_ours(client.api, project)
    legacy = find_legacy(client.api, project)
    done = adopt(client.api, project, legacy) if legacy else []
    if legacy:
        project = load_project(project.config_file, project.name)
    containers = {}
    for c in client.api.containers(all=True, filters=L.project_filter(project.name)):
        containers.setdefault((c.get("Labels") or {}).get(L.SERVICE, "?"), []).append(c["Id"])
    order = stop_order({n: s.dependency_names() for n, s in project.services.items()})
    for name in order + sorted(set(containers) - set(order)):
        for cid in containers.get(name, []):
            client.api.stop(cid, timeout=20)
            client.api.remove_container(cid, force=True, v=volumes)  # --volumes: its anonymous volumes too
            done.append(f"removed container of {name}")
    remove_reader(client.api, project.name)  # over ssh://, what `up` reads the site's copy with
    done += swarm_down(client.api, project)  # a site deployed with --orchestrator swarm
    for net in client.api.networks(filters={"label": f"{L.PROJECT}={project.name}"}):
        client.api.remove_network(net["Id"])
        done.append(f"removed network {net['Name']}")
    if volumes:
        for vol in project.volumes.values():
            if not vol.external and _remove_volume(client, vol.name):
                done.append(f"removed volume {vol.name}")
    return done


def _remove_volume(client: "docker.DockerClient", name: str) -> bool:
    from docker.errors import NotFound

    try:
        client.api.remove_volume(name)
        return True
    except NotFound:
        return False


def running_container(client: "docker.DockerClient", project: Project, service: str) -> str:
    """The service's container, which must be running (commands are executed in it)."""
    container = _container(client, project, service, required=True)
    assert container is not None
    if not client.api.inspect_container(container)["State"].get("Running"):
        raise InvalidInput(f"service {service!r} is not running: run `kitctl up` first")
    return container


def _container(client: "docker.DockerClient", project: Project, service: str, required: bool) -> str | None:
    if required and service not in project.services:
        raise InvalidInput(f"unknown service {service!r} (services: {', '.join(sorted(project.services))})")
    flt = L.project_filter(project.name)
    flt["label"].append(f"{L.SERVICE}={service}")
    found = [c for c in client.api.containers(all=True, filters=flt) if not c["Names"][0].endswith("_kitctl_old")]
    if not found:  # a Swarm site: one running task of the service on this node
        from kitctl.deploy.swarm.tasks import task_container_filter

        found = client.api.containers(filters=task_container_filter(project, service))
    if not found:
        if required:
            raise InvalidInput(f"service {service!r} has no container: run `kitctl up` first")
        return None
    return found[0]["Id"]


def _exec(client: "docker.DockerClient", container: str, command: list[str], user: str | None = None) -> tuple[int, str]:
    result = engine_exec.run(client.api, container, command, user or "")
    return result.exit_code, result.output.decode("utf-8", "replace")


def human_uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"
