"""Is `kitctl up` a no-op? Answered with the standard library before the CLI framework loads.

A second `kitctl up` with nothing changed is the command licensees run most
(from cron, from a deploy script). The answer needs one container list, one
image lookup per image, the config hashes and the licence the agent stored
(one query in the db container), so this module decides it from the same
functions the full path uses (`plan_services`, the hashes, the cached licence
verification, the plugin services' last check), and answers "not sure"
whenever anything would need the full path: then the full `up` runs and
decides for itself. Over ssh:// the same answers, and the digest of the site's
copy on the engine's host, come over one SSH connection (`ssh_engine`).
It only ever concludes "nothing to do"; it never changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kitctl.deploy import doctor
from kitctl.deploy.actions import orphans, plan_services, summary
from kitctl.deploy.compose import Project, load_project
from kitctl.deploy.container_hashes import config_hash, mounts_hash
from kitctl.deploy.drift import last_check, rendered_by_kitctl, token_from_output, token_query
from kitctl.engine import DEFAULT_TARGET, check_target, is_remote
from kitctl.deploy.engine_socket import EngineError, EngineSocket
from kitctl.deploy.labels import project_filter
from kitctl.deploy.rendered_site import cached_licence, site_domain, site_url
from kitctl.deploy.state import Running, by_service, running_from_list
from kitcore.errors import KitError
from kitcore.sitedir import SiteDir


@dataclass(frozen=True)
class Unchanged:
    """What `kitctl up` prints when nothing is to be done."""

    message: str
    url: str | None
    warnings: list[str]


@dataclass(frozen=True)
class Observed:
    """What the engine (and, over ssh://, the engine's host) said, for `decide`."""

    containers: list[dict[str, Any]]
    image_ids: dict[str, str | None]
    stored_token: str | None
    site_copy_current: bool = True  # over ssh://: the remote copy is the one `sync_site` would leave


def unchanged_stack(site_dir: Path, target: str | None, remote_dir: str | None = None) -> Unchanged | None:
    """`Unchanged` when a full `up` would change nothing; None when the full path must decide."""
    target = target or DEFAULT_TARGET
    remote = is_remote(target)
    if not (target.startswith("unix://") or remote) or SiteDir(site_dir).needs_render():
        return None
    site_dir = site_dir.resolve()
    try:
        if cached_licence(site_dir, None, None) is None:
            return None
        domain_warnings = doctor.start_domain_check(site_domain(site_dir))
        project = load_project(site_dir)
        observed = observe_remote(check_target(target), project, remote_dir) if remote else observe_local(target, project)
    except (KitError, EngineError, OSError, ValueError, EOFError):
        return None
    found = decide(site_dir, project, observed)
    return None if found is None else replace(found, warnings=domain_warnings())


def decide(site_dir: Path, project: Project, observed: Observed) -> Unchanged | None:
    """The comparison the full path makes, on what was observed; None at the least difference."""
    if not observed.site_copy_current:
        return None
    current, leftovers = by_service(running_from_list(observed.containers))
    if leftovers or orphans(project, current) or not all(observed.image_ids.values()):
        return None
    if rendered_by_kitctl(site_dir) and last_check(site_dir, observed.stored_token) is None:
        return None  # a licence from HQ (or a plugin choice) may change the plugin services: `up` renders again
    hashes = {name: (config_hash(project, name), mounts_hash(project, name)) for name in project.services}
    actions = plan_services(project, hashes, current, observed.image_ids)
    if any(action.changes_anything for action in actions):
        return None
    return Unchanged(summary(actions), site_url(project, site_dir), [])


def observe_local(target: str, project: Project) -> Observed:
    with EngineSocket(target) as engine:
        return _observe(engine, project)


def observe_remote(target: str, project: Project, remote_dir: str | None) -> Observed:
    """Through the engine socket a persistent SSH master forwards (no handshake, no session, no shell), else
    over ONE new SSH session: the copy's digest (a shell command), then the engine's answers on dial-stdio,
    leaving a master behind for the next command."""
    from kitctl.deploy import ssh_master

    forwarded = ssh_master.forwarded_engine(target)
    if forwarded is not None:
        try:
            return observe_forwarded(forwarded, project, remote_dir)
        except (EngineError, OSError):
            pass  # the master went away meanwhile: a new connection decides, and starts another
    ssh_master.start(target)
    return observe_over_session(target, project, remote_dir)


def observe_forwarded(engine_target: str, project: Project, remote_dir: str | None) -> Observed:
    """The engine's answers, and the copy's marker read by the engine (`copy_reader`), over the forwarded socket."""
    from kitctl.deploy.copy_reader import copy_is_current
    from kitctl.deploy.remote import remote_site_dir, site_digest

    destination = remote_site_dir(project, remote_dir)
    with EngineSocket(engine_target) as engine:
        observed = _observe(engine, project)
        current = copy_is_current(engine, project, destination, site_digest(project.working_dir))
    return replace(observed, site_copy_current=current)


def observe_over_session(target: str, project: Project, remote_dir: str | None) -> Observed:
    """Over ONE SSH session: the copy's digest (a shell command), then the engine's answers on dial-stdio."""
    from kitctl.deploy.remote import marker_command, remote_site_dir, site_digest
    from kitctl.deploy.ssh_engine import SSHHost

    with SSHHost(target) as host:
        # the stored licence's query is an exec, after which the engine closes the dial-stdio connection
        host.open(marker_command(remote_site_dir(project, remote_dir)), spare=token_query(project) is not None)
        local = site_digest(project.working_dir)  # while sshd sets the session up
        copied, client = host.result()
        with EngineSocket(target, client=client) as engine:
            observed = _observe(engine, project)
    return replace(observed, site_copy_current=copied.strip() == local)


def _observe(engine: EngineSocket, project: Project) -> Observed:
    listed = engine.containers(project_filter(project.name))
    current, _ = by_service(running_from_list(listed))
    ids = {ref: engine.image_id(ref) for ref in sorted({s.image for s in project.services.values()})}
    return Observed(listed, ids, _stored_licence_token(engine, project, current))


def _stored_licence_token(engine: EngineSocket, project: Project, current: dict[str, Running]) -> str | None:
    """The licence the agent last stored in the site database, as `kitctl.deploy.drift` reads it."""
    command, db = token_query(project), current.get("db")
    if command is None or db is None or db.state != "running":
        return None
    return token_from_output(*engine.exec_output(db.id, command))
