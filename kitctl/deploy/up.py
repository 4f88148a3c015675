"""`kitctl up`: from a rendered site directory to a running, healthy stack.

preflight → images (pull with the licence's grant, or an offline bundle) →
read what runs → plan → networks/volumes → services in dependency order,
health-gated, rolled back on failure → first admin on first deploy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kitctl.deploy import doctor
from kitctl.deploy.actions import ServiceAction, orphans, plan_services
from kitctl.deploy.compose import Project, load_project
from kitctl.deploy.container_hashes import config_hash, mounts_hash
from kitctl.deploy.identity import adopt, check_ours, find_legacy
from kitctl.deploy.orchestrator import ORCHESTRATORS
from kitctl.deploy.runner import Outcome, run_plan
from kitctl.deploy.rendered_site import licence_summary, require_site_dir, site_domain, site_url, verified_licence
from kitctl.deploy.state import by_service, project_containers
from kitctl.deploy.steps import EnsureNetwork, EnsureVolume, Step, StepContext
from kitcore.errors import InvalidInput, KitError

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.report import Reporter

DEFAULT_TIMEOUT = 180.0
NO_HEALTHCHECK_TIMEOUT = 60.0


@dataclass
class UpOptions:
    site_dir: Path
    host: str | None = None
    licence: str | None = None
    hq_keys: Path | None = None
    bundle: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    services: list[str] | None = None
    image_overrides: dict[str, str] = field(default_factory=dict)  # service → image (upgrade)
    dry_run: bool = False
    remote_dir: str | None = None
    admin_name: str = "admin"
    keep: bool = False  # a failed first deploy keeps what it made, stopped, for the person to inspect
    orchestrator: str = "engine"  # "engine" (containers on one engine) or "swarm" (kitctl.deploy.swarm)


@dataclass
class UpResult:
    project: str
    actions: list[ServiceAction]
    outcome: Outcome | None = None
    admin_output: str | None = None  # what create-admin printed: the generated password
    admin_name: str = "admin"
    url: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not any(a.changes_anything for a in self.actions)


def up(options: UpOptions, reporter: "Reporter") -> UpResult:
    """Deploy; KitError/InvalidInput (one line) on refusal, StepFailed after a rollback."""
    from kitctl.engine import connect, is_remote

    if options.timeout <= 0:
        raise InvalidInput("--timeout must be positive")
    if options.orchestrator not in ORCHESTRATORS:
        raise InvalidInput(f"--orchestrator must be one of: {', '.join(ORCHESTRATORS)}")
    site_dir = require_site_dir(options.site_dir)
    project = with_images(load_project(site_dir), options.image_overrides)
    if options.orchestrator == "swarm":
        return _swarm(options, project, site_dir, reporter)
    domain_warnings = doctor.start_domain_check(site_domain(site_dir))
    client = connect(options.host)
    remote = is_remote(options.host)
    if remote:
        from kitctl.deploy import ssh_master

        ssh_master.start(options.host or "")  # beside the deploy, for the next command (refuses a bad setting)
    check_ours(client.api, project)
    _not_on_swarm(client.api, project)
    legacy = find_legacy(client.api, project)
    _preflight(client, project, options.host, lambda: licence_summary(site_dir, options.licence, options.hq_keys))
    host_path = _host_paths(options, project) if remote else (lambda p: p)
    ids = _images(client, project, options, lambda: verified_licence(site_dir, options.licence, options.hq_keys), reporter)
    if legacy is not None and not options.dry_run:
        for line in adopt(client.api, project, legacy):
            reporter.note(line)
        project = with_images(load_project(site_dir), options.image_overrides)
    if not options.dry_run:
        _retire_plugin_services(client, project, reporter)
    current, leftovers = _current(client, project.name)
    hashes = {name: (config_hash(project, name), mounts_hash(project, name)) for name in project.services}
    only = _selected(project, options.services)
    actions = plan_services(project, hashes, current, ids, only)
    result = UpResult(project.name, actions, url=site_url(project, site_dir), admin_name=options.admin_name)
    if legacy is not None and options.dry_run:
        result.warnings.append("would be " + legacy.describe())
    for orphan in orphans(project, current):
        result.warnings.append(f"container {orphan.name} belongs to no service in compose.yaml (left alone)")
    if options.dry_run or result.nothing_to_do:
        if not options.dry_run:
            _remove(client, leftovers)
            _copy_reader(client, project, options)
        result.warnings += domain_warnings()
        return result
    ctx = StepContext(client.api, project, hashes, reporter, host_path, _timeouts(project, options.timeout),
                      early_prepare=not remote, keep_failed=options.keep, own_probes=not remote)
    if remote:
        from kitctl.deploy.remote import make_dirs_on

        ctx.make_dirs = make_dirs_on(options.host or "")
    result.outcome = run_plan(ctx, _prepare(project, actions), actions)
    _remove(client, leftovers)
    _copy_reader(client, project, options)
    result.admin_output = _first_admin(client, ctx, site_dir, result.outcome, options, reporter)
    result.warnings += domain_warnings()
    return result


def _swarm(options: UpOptions, project: Project, site_dir: Path, reporter: "Reporter") -> UpResult:
    """The same site as Swarm services (kitctl.deploy.swarm.rollout); the licence and images checked as for one engine."""
    from kitctl.deploy.swarm.rollout import swarm_up
    from kitctl.deploy.swarm.tasks import running_container
    from kitctl.engine import connect

    if options.dry_run or options.services or options.keep or options.bundle is not None:
        raise InvalidInput("--orchestrator swarm deploys the whole site: --dry-run, --service, --keep and --bundle "
                           "are for a single engine")
    client = connect(options.host)
    verified_licence(site_dir, options.licence, options.hq_keys)
    _images(client, project, options, lambda: verified_licence(site_dir, options.licence, options.hq_keys), reporter)
    done = swarm_up(client.api, project, options.timeout, reporter.note)
    actions = [ServiceAction(n, "recreate" if n in done.changed else "keep", "swarm service") for n in project.services]
    result = UpResult(project.name, actions, Outcome(done.changed, [], done.seconds), url=site_url(project, site_dir),
                      admin_name=options.admin_name, warnings=done.warnings)
    if "storefront" in done.changed:
        from kitctl.deploy.admin import create_first_admin, needs_first_admin

        container = running_container(client.api, f"{project.name}_storefront")
        if container and needs_first_admin(site_dir, done.changed):
            admin = create_first_admin(client.api, container, site_dir, options.admin_name)
            result.admin_output = (admin.output or None) if admin.ok else None
    return result


def _not_on_swarm(api, project: Project) -> None:
    """Containers beside the site's Swarm tasks would be a second database on the same volume name."""
    from kitctl.deploy.swarm.tasks import swarm_status

    if swarm_status(api, project):
        raise InvalidInput(f"{project.name} runs as Swarm services on this engine: pass --orchestrator swarm "
                           "(or `kitctl down` first)")


def with_images(project: Project, overrides: dict[str, str]) -> Project:
    """The project with some services' images replaced (upgrade), raw config included."""
    if not overrides:
        return project
    services, raw = dict(project.services), dict(project.raw_services)
    for name, image in overrides.items():
        if name not in services:
            raise InvalidInput(f"unknown service {name!r}")
        services[name] = dataclasses.replace(services[name], image=image)
        raw[name] = {**(raw[name] or {}), "image": image}
    return dataclasses.replace(project, services=services, raw_services=raw)


def _preflight(client: "docker.DockerClient", project: Project, host: str | None, load_licence) -> None:
    """Engine, architecture, disk, ports (on an ssh:// engine's host, measured there) and licence; the first
    failure stops `up` before anything changes. A taken port is the person's choice to make again (exit 2)."""
    from kitctl.deploy.remote_probe import probe_for
    from kitctl.engine import is_remote

    checks = [*doctor.host_checks(client, project, is_remote(host), probe_for(host)), doctor.check_licence(load_licence)]
    for check in doctor.failures(checks):
        if check.name == "licence":
            load_licence()  # re-raise the licence's own one-line error (exit code 2)
        error = InvalidInput if check.name == "ports" else KitError
        raise error(f"preflight {check.name}: {check.detail}")


def _images(client, project: Project, options: UpOptions, full_licence, reporter: "Reporter") -> dict[str, str | None]:
    from kitctl.deploy.pull import images_from_bundle, local_image_ids, pull_missing

    refs = [s.image for s in project.services.values()]
    if options.bundle is not None:  # offline: the bundle's images or nothing, never a registry
        return images_from_bundle(client, str(options.bundle), refs, reporter)
    ids = local_image_ids(client.api, refs)
    if options.dry_run or all(ids.values()):
        return ids
    return pull_missing(client.api, ids, full_licence().claims.registry, reporter)


def _selected(project: Project, services: list[str] | None) -> set[str] | None:
    if not services:
        return None
    from kitctl.deploy.order import with_dependencies

    return with_dependencies({n: s.dependency_names() for n, s in project.services.items()}, services)


def _prepare(project: Project, actions: list[ServiceAction]) -> list[Step]:
    """Networks and volumes the changing services use (never removed by `up`)."""
    changing = [project.services[a.service] for a in actions if a.kind in ("create", "recreate")]
    nets = sorted({key for s in changing for key, _ in s.networks})
    vols = sorted({m.source for s in changing for m in s.mounts if m.kind == "volume"})
    return [EnsureNetwork(project.networks[n]) for n in nets] + [EnsureVolume(project.volumes[v]) for v in vols]


def _timeouts(project: Project, limit: float) -> dict[str, float]:
    return {name: min(limit, s.healthcheck.deadline_seconds() if s.healthcheck else NO_HEALTHCHECK_TIMEOUT)
            for name, s in project.services.items()}


def _current(client, project_name: str):
    """Containers per service; one an interrupted update set aside goes back in place if nothing replaced it."""
    from kitctl.deploy.labels import container_name

    current, leftovers = by_service(project_containers(client.api, project_name))
    restored = [old for old in leftovers if old.service not in current]
    for old in restored:
        client.api.rename(old.id, container_name(project_name, old.service))
    if restored:
        current, leftovers = by_service(project_containers(client.api, project_name))
    return current, leftovers


def _retire_plugin_services(client, project: Project, reporter: "Reporter") -> None:
    """Containers of plugin services compose.yaml no longer has (a licence downgrade) go; their volumes stay."""
    from kitctl.deploy.drift import remove_retired_plugin_services

    for service in remove_retired_plugin_services(client, project):
        reporter.done(service, "removed (plugin off; volumes kept)", 0.0)


def _remove(client, leftovers) -> None:
    for old in leftovers:
        client.api.remove_container(old.id, force=True)


def _first_admin(client, ctx: StepContext, site_dir: Path, outcome: Outcome, options: UpOptions,
                 reporter: "Reporter") -> str | None:
    from kitctl.deploy.admin import STOREFRONT, create_first_admin, needs_first_admin

    if STOREFRONT not in ctx.containers or not needs_first_admin(site_dir, outcome.changed):
        return None
    result = create_first_admin(client.api, ctx.containers[STOREFRONT], site_dir, options.admin_name)
    if not result.ok:
        reporter.warn(f"could not create the first admin: {result.output} (run `python -m storefront create-admin` later)")
        return None
    return result.output or None  # "": the database already has an admin


def _copy_reader(client: "docker.DockerClient", project: Project, options: UpOptions) -> None:
    """Over ssh://, once the stack is up: what the next no-op check reads the site's copy with."""
    from kitctl.engine import is_remote

    if is_remote(options.host):
        from kitctl.deploy.copy_reader import ensure_reader
        from kitctl.deploy.remote import remote_site_dir

        from docker.errors import APIError

        try:
            ensure_reader(client.api, project, remote_site_dir(project, options.remote_dir))
        except APIError:
            pass  # the next no-op check reads the copy over an SSH session instead


def _host_paths(options: UpOptions, project: Project):
    from kitctl.deploy.remote import sync_site

    return sync_site(options.host or "", project, options.remote_dir)
