"""`kitctl up | down | status | logs | upgrade | backup | backup-key | restore | doctor | support-bundle`.

Thin shells: parse options, call kitctl.deploy, print. Heavy imports (docker,
paramiko, rich tables) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from kitcore.sitedir import DEFAULT_SITE_DIR, SITE_DIR_ENV, SiteDir
from kitctl.cli.options import JSON
from kitctl.cli.site_options import with_site_options


SITE_DIR = typer.Option(Path(DEFAULT_SITE_DIR), "--site-dir", envvar=SITE_DIR_ENV, file_okay=False,
                        help="The rendered site directory (holds compose.yaml).")
HOST = typer.Option(None, "--docker-host", envvar="KITCTL_DOCKER_HOST",
                    help="Docker engine: unix:///var/run/docker.sock (default) or ssh://user@host[:port].")
LICENCE = typer.Option(None, "--licence", help="Licence TOKEN, @FILE or - (default: the site's own, written by render).")
HQ_KEYS = typer.Option(None, "--hq-keys", envvar="KITCTL_HQ_KEYS", dir_okay=False,
                       help="Pinned HQ keys (default: the site's hq-keys.json).")
TIMEOUT = typer.Option(180.0, "--timeout", help="Longest wait, in seconds, for one service to turn healthy.")
REMOTE_DIR = typer.Option(None, "--remote-dir", help="Where the site's files go on an ssh:// host "
                          "(default /var/lib/kitctl/sites/<project>).")


def register(app: typer.Typer) -> None:
    for command in (up, down, status, logs, upgrade, backup, backup_key, restore, doctor):
        app.command()(command)
    app.command("support-bundle")(support_bundle)
    app.command("kube-manifests")(kube_manifests)


def kube_manifests(
    output: Path = typer.Option(..., "-o", "--output", dir_okay=False, help="Where to write the manifests (mode 0600)."),
    site_dir: Path = SITE_DIR,
) -> int:
    """Write the rendered site as Kubernetes manifests (on paper: validated, not applied here; docs/scale-out.md)."""
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.kubernetes import manifests, write
    from kitctl.deploy.rendered_site import require_site_dir

    objects = manifests(load_project(require_site_dir(site_dir)))
    write(objects, output)
    _out().print(f"wrote {len(objects)} objects to {output}")
    return 0


@with_site_options
def up(
    site_params: dict[str, Any],
    bundle: Optional[Path] = typer.Option(None, "--bundle", dir_okay=False, help="Load images from an offline bundle."),
    timeout: float = TIMEOUT,
    remote_dir: Optional[str] = REMOTE_DIR,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change on the engine; change nothing."),
    service: Optional[list[str]] = typer.Option(None, "--service", help="Only this service (and what it needs)."),
    keep: bool = typer.Option(False, "--keep", help="If a first deploy fails, keep its containers (stopped), networks "
                              "and volumes to inspect; `kitctl down --volumes` removes them."),
) -> int:
    """Render (when site inputs are given) and start or update the stack: health-gated, rolled back on failure."""
    from kitctl.deploy import orchestrator
    from kitctl.deploy.outcome import deploy_and_report, refresh_plugin_services
    from kitctl.deploy.up import UpOptions

    host = site_params.get("docker_host") or _env_host()
    wanted = orchestrator.checked(site_params.get("orchestrator"))  # before anything is rendered or read
    orchestrator.check_switch(wanted, SiteDir.chosen(site_params.get("site_dir")).root, host)
    site_dir = _render_if_asked(site_params, dry_run)
    if SiteDir(site_dir).is_rendered:
        refresh_plugin_services(site_dir, host, _path(site_params.get("hq_keys")), dry_run)
    options = UpOptions(site_dir=site_dir, host=host,
                        licence=site_params.get("licence"), hq_keys=_path(site_params.get("hq_keys")), bundle=bundle,
                        timeout=timeout, remote_dir=remote_dir, dry_run=dry_run, services=service or None,
                        keep=keep, orchestrator=wanted or orchestrator.recorded(site_dir) or orchestrator.DEFAULT)
    return deploy_and_report(options, "up")


RENDER_ONLY = ("site_dir", "docker_host", "hq_keys", "licence")


def _render_if_asked(site_params: dict[str, Any], dry_run: bool) -> Path:
    """Render first when site inputs are given, the site has a site.toml, or nothing is rendered yet."""
    site = SiteDir.chosen(site_params.get("site_dir"))  # the renderer's rule too, without the settings machinery
    inputs_given = any(v is not None for k, v in site_params.items() if k not in RENDER_ONLY)
    if not site.needs_render(inputs_given):
        return site.root
    if dry_run:
        from kitcore.errors import InvalidInput

        raise InvalidInput("--dry-run shows engine changes only: run `kitctl plan` to see what rendering would change")
    from kitctl.render import render_site

    result = render_site(site_params)
    _out().print(f"[dim]{'rendered' if result.changed else 'render unchanged'}: {result.site_dir}[/]")
    return result.site_dir


def _path(value: Optional[str]) -> Optional[Path]:
    return Path(value) if value else None


def _env_host() -> Optional[str]:
    import os

    return os.environ.get("KITCTL_DOCKER_HOST") or None


def upgrade(
    to: str = typer.Option(..., "--to", help="Kit version (image tag) to run."),
    site_dir: Path = SITE_DIR,
    host: Optional[str] = HOST,
    licence: Optional[str] = LICENCE,
    hq_keys: Optional[Path] = HQ_KEYS,
    timeout: float = TIMEOUT,
    remote_dir: Optional[str] = REMOTE_DIR,
) -> int:
    """Move the kit's services to another version through the same gated path (rolled back on failure)."""
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.outcome import deploy_and_report
    from kitctl.deploy.rendered_site import require_site_dir
    from kitctl.deploy.upgrade import record_images, upgraded_images
    from kitctl.deploy.up import UpOptions

    project = load_project(require_site_dir(site_dir))
    images = upgraded_images(project, to)
    if not images:
        _out().print(f"nothing to do: the kit's services already run {to}")
        return 0
    from kitctl.deploy.swarm.ops import orchestrator_of
    from kitctl.engine import connect

    options = UpOptions(site_dir=site_dir, host=host, licence=licence, hq_keys=hq_keys, timeout=timeout,
                        remote_dir=remote_dir, image_overrides=images,
                        orchestrator=orchestrator_of(connect(host).api, project))  # a Swarm site: a rolling update
    code = deploy_and_report(options, "upgrade")
    if code == 0:
        record_images(project.config_file, project, images)
        _out().print(f"compose.yaml now pins version {to}")
    return code


def down(
    site_dir: Path = SITE_DIR,
    host: Optional[str] = HOST,
    volumes: bool = typer.Option(False, "--volumes", help="Also delete the data volumes (the database!)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask before deleting volumes."),
    remote_dir: Optional[str] = REMOTE_DIR,
) -> int:
    """Stop and remove the stack's containers and network; data volumes (and, over ssh://, the site's copy on
    the engine's host) stay unless --volumes."""
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect, is_remote
    from kitctl.deploy.operate import down as run_down
    from kitctl.deploy.rendered_site import require_site_dir

    project = load_project(require_site_dir(site_dir))
    if volumes and is_remote(host):
        from kitctl.deploy.remote import remote_site_dir

        remote_site_dir(project, remote_dir)  # a bad --remote-dir is refused before anything is stopped
    if volumes and not yes:
        names = ", ".join(v.name for v in project.volumes.values() if not v.external) or "none"
        if not typer.confirm(f"Delete the data volumes ({names})? This cannot be undone", default=False):
            raise typer.Abort()
    lines = run_down(connect(host), project, volumes)
    if volumes and is_remote(host):
        from kitctl.deploy.remote import remove_site_copy

        lines.append(remove_site_copy(host, project, remote_dir) or "")
    if is_remote(host):
        from kitctl.deploy.ssh_master import close

        lines.append(f"closed the persistent SSH connection to {host}" if close(host or "") else "")
    for line in filter(None, lines):
        _out().print(line)
    _out().print(f"{project.name} is down" + ("" if volumes else "; data volumes kept"))
    return 0


def status(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, as_json: bool = JSON) -> int:
    """Services with image, state, health, uptime and ports; the licence state the agent recorded."""
    from kitctl.console import print_json
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect
    from kitctl.deploy.drift import plugin_drift
    from kitctl.deploy.operate import licence_state, status as run_status
    from kitctl.deploy.rendered_site import require_site_dir

    project = load_project(require_site_dir(site_dir))
    client = connect(host)
    rows = run_status(client, project)
    licence = licence_state(client, project)
    drift = plugin_drift(client, project, site_dir)
    terms = _licence_terms(site_dir, host, client)
    if as_json:
        print_json({"project": project.name, "services": [r.as_dict() for r in rows], "licence": licence,
                    "licence_terms": terms.as_dict() if terms else None, **drift.as_dict()})
        return 0
    _status_table(project.name, rows, licence)
    if terms is not None:
        from rich.markup import escape

        _out().print(f"licence terms: {escape(terms.describe())}")
    _drift_line(drift)
    _legacy_line(client, project)
    return 0


def _licence_terms(site_dir: Path, host: Optional[str], client):
    """Tier, expiry and features of the newest licence (the site's or HQ's newer one); None without one."""
    from kitcore.errors import KitError
    from kitctl.deploy.newest_licence import newest_licence

    try:
        return newest_licence(site_dir, host, None, client)
    except KitError:
        return None  # status still answers; `kitctl doctor` says what is wrong with the licence


def _legacy_line(client, project) -> None:
    """A site still running under its old folder-named project is adopted by the next `up`."""
    from kitctl.deploy.identity import find_legacy

    legacy = find_legacy(client.api, project)
    if legacy is not None:
        _out().print(f"[bold yellow]redeploy needed[/]: this site still runs as the old project {legacy.project!r}; "
                     f"`kitctl up` moves it to {project.name!r} and keeps its data")


def _drift_line(drift) -> None:
    """The table's footer about plugin services: a redeploy is needed, or the check could not be made."""
    from rich.markup import escape

    reason = drift.reason()
    if reason:
        label = "[bold yellow]redeploy needed[/]" if drift.redeploy_needed else "[yellow]plugins[/]"
        _out().print(f"{label}: {escape(reason)}")


def _status_table(project: str, rows, licence) -> None:
    from rich.markup import escape
    from rich.table import Table

    from kitctl.deploy.operate import human_uptime

    colours = {"running": "green", "healthy": "green", "unhealthy": "red", "starting": "yellow",
               "exited": "red", "missing": "red"}
    table = Table(title=f"{project}", title_justify="left")
    for column in ("service", "image", "state", "health", "uptime", "ports"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.service, escape(r.image), f"[{colours.get(r.state, 'white')}]{r.state}[/]",
                      f"[{colours.get(r.health, 'white')}]{r.health}[/]", human_uptime(r.uptime_seconds),
                      escape(", ".join(r.ports) or "-"))
    out = _out()
    out.print(table)
    _hq_line(licence)
    if licence is None:
        out.print("licence: [dim]not recorded in the site database yet[/]")
    elif licence["status"] in ("active", "grace"):
        out.print(f"licence: [green]{escape(licence['status'])}[/]")
    else:
        reason = f" ({licence['reason']})" if licence["reason"] else ""
        out.print(f"licence: [bold red]{escape(licence['status'].upper())}[/]{escape(reason)}: the site takes no orders"
                  + _until(licence.get("suspended_until")))


def _until(until: int | None) -> str:
    """`until <date>` of a timed suspension (HQ lifts it then)."""
    from datetime import datetime, timezone

    if not until:
        return ""
    return f" until {datetime.fromtimestamp(until, timezone.utc):%Y-%m-%d %H:%M} UTC (HQ lifts it then)"


def _hq_line(licence) -> None:
    """How the agent last found HQ: answering, unreachable (no answer) or refusing, and since when."""
    import time

    hq = (licence or {}).get("hq")
    if not hq:
        return
    since = f" for {int(time.time() - hq['since'])} s" if hq.get("since") else ""
    colour = {"ok": "green", "unreachable": "bold red", "refused": "bold yellow"}.get(hq["state"], "white")
    words = {"ok": "answering", "unreachable": "UNREACHABLE (no answer; the agent retries every second)",
             "refused": "REFUSING the site's requests"}.get(hq["state"], hq["state"])
    _out().print(f"HQ: [{colour}]{words}[/]{since}")


def logs(
    service: str = typer.Argument(..., help="Service name (e.g. storefront)."),
    site_dir: Path = SITE_DIR,
    host: Optional[str] = HOST,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: int = typer.Option(200, "--tail", min=0, max=100000, help="Lines from the end to start with."),
) -> int:
    """Print a service's logs (stdout and stderr)."""
    import sys

    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect
    from kitctl.deploy.operate import logs as run_logs
    from kitctl.deploy.rendered_site import require_site_dir

    project = load_project(require_site_dir(site_dir))
    for chunk in run_logs(connect(host), project, service, follow, tail):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return 0


IDENTITY_HELP = ("age identity file (0600); default $KITCTL_BACKUP_IDENTITY or "
                 "~/.config/kitctl/backup-identity.txt.")


def backup(
    out: Path = typer.Option(..., "--out", "-o", dir_okay=False, help="Archive to write (mode 0600, never over a file)."),
    site_dir: Path = SITE_DIR,
    host: Optional[str] = HOST,
    recipient: Optional[list[str]] = typer.Option(None, "--recipient", "-r", metavar="KEY",
                                                  help="Encrypt to this age (age1…) or ssh public key; repeatable."),
    recipients_file: Optional[Path] = typer.Option(None, "--recipients-file", "-R", dir_okay=False,
                                                   help="Encrypt to the public keys in FILE, one a line."),
    identity: Optional[Path] = typer.Option(None, "--identity", "-i", dir_okay=False,
                                            help="Without --recipient: encrypt to this identity's public key, "
                                                 "creating it if missing. " + IDENTITY_HELP),
    plain: bool = typer.Option(False, "--plain", help="Write the archive UNENCRYPTED (it holds the site key)."),
) -> int:
    """Database dump (taken inside the db container) and the site directory, in one archive encrypted with age."""
    from kitctl.deploy.backup import backup as run_backup
    from kitctl.deploy.backup_keys import backup_recipients, default_identity_path
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect
    from kitctl.deploy.identity import check_ours
    from kitctl.deploy.rendered_site import require_site_dir

    project = load_project(require_site_dir(site_dir))
    key_file = identity or default_identity_path()
    recipients, how, created = backup_recipients(recipient or [], recipients_file, key_file, plain)
    if created:
        _err().print(f"[bold yellow]new backup identity[/] written to {key_file} (mode 0600). Copy it somewhere "
                     "off this host now: without it no backup made with it can be restored.")
    if plain:
        _err().print("[bold red]WARNING: --plain: this backup is NOT encrypted.[/] It holds the site key, which "
                     "opens every delivered card key and buyer contact: anyone who gets the file can read them.")
    client = connect(host)
    check_ours(client.api, project)
    manifest = run_backup(client, project, out, recipients=recipients)
    _out().print(f"backup written to {out} ({how}): database {manifest['db']['bytes']} bytes, "
                 f"{len(manifest['files'])} site files")
    return 0


def backup_key(
    identity: Optional[Path] = typer.Option(None, "--identity", "-i", dir_okay=False, help=IDENTITY_HELP),
) -> int:
    """Print the public key (age recipient) backups are encrypted to, creating the identity if missing.

    The identity's secret line is never printed; keep a copy of the file off this host.
    """
    from kitctl.deploy.backup_keys import default_identity_path, ensure_identity

    key_file = identity or default_identity_path()
    recipient, created = ensure_identity(key_file)
    if created:
        _err().print(f"new backup identity written to {key_file} (mode 0600); copy it somewhere off this host")
    _out().print(recipient)
    return 0


def restore(
    archive: Path = typer.Argument(..., dir_okay=False, help="A `kitctl backup` archive."),
    site_dir: Path = typer.Option(..., "--site-dir", file_okay=False, help="New, empty site directory."),
    host: Optional[str] = HOST,
    hq_keys: Optional[Path] = HQ_KEYS,
    timeout: float = TIMEOUT,
    remote_dir: Optional[str] = REMOTE_DIR,
    identity: Optional[Path] = typer.Option(None, "--identity", "-i", dir_okay=False,
                                            help="Opens an encrypted archive. " + IDENTITY_HELP),
) -> int:
    """Rebuild a site on a fresh host from a backup: files, volumes, database, then the whole stack."""
    from kitctl.deploy.backup import restore as run_restore
    from kitctl.deploy.backup_keys import default_identity_path
    from kitctl.deploy.report import RichReporter
    from kitctl.deploy.up import UpOptions

    if not archive.is_file():
        from kitcore.errors import InvalidInput

        raise InvalidInput(f"{archive} does not exist")
    options = UpOptions(site_dir=site_dir, host=host, hq_keys=hq_keys, timeout=timeout, remote_dir=remote_dir)
    manifest = run_restore(archive, site_dir, options, RichReporter(), identity or default_identity_path())
    _out().print(f"[bold green]restored[/] {manifest['project']} into {site_dir}")
    return 0


def doctor(
    site_dir: Path = SITE_DIR,
    host: Optional[str] = HOST,
    licence: Optional[str] = LICENCE,
    hq_keys: Optional[Path] = HQ_KEYS,
    as_json: bool = JSON,
) -> int:
    """Preflight: engine and version, architecture, free disk, ports, licence, domain resolution."""
    from kitctl.console import print_json
    from kitctl.deploy import doctor as checks
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect, is_remote
    from kitctl.deploy.rendered_site import require_site_dir, site_domain, verified_licence

    from kitctl.deploy.newest_licence import newest_licence

    site = require_site_dir(site_dir)
    project = load_project(site)
    client = connect(host)
    # the licence given, else the newest of the site's own and the one HQ sent the agent (what the shop uses)
    load = (lambda: verified_licence(site, licence, hq_keys)) if licence else \
        (lambda: newest_licence(site, host, hq_keys, client).verified)
    from kitctl.deploy.remote_probe import probe_for

    # ports and disk are measured where the engine publishes and stores: over ssh://, its host
    results = checks.run_checks(client, project, is_remote(host), load, site_domain(site), probe_for(host))
    failed = checks.failures(results)
    if as_json:
        print_json({"ok": not failed, "checks": [c.as_dict() for c in results]})
    else:
        from rich.markup import escape

        marks = {"ok": "[green]✔[/]", "warn": "[yellow]![/]", "fail": "[red]✘[/]"}
        for c in results:
            _out().print(f"{marks[c.status]} {c.name:<13} {escape(c.detail)}")
    return 1 if failed else 0


def support_bundle(
    out: Path = typer.Option(Path("support-bundle.tar.gz"), "--out", "-o", dir_okay=False,
                             help="Archive to write (.tar.gz, mode 0600)."),
    site_dir: Path = SITE_DIR,
    host: Optional[str] = HOST,
    lines: int = typer.Option(200, "--lines", min=1, max=10000, help="Last lines of each service's log."),
) -> int:
    """One archive for HQ's support: status, doctor, versions, logs, metrics, site state, audit; secrets redacted."""
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect
    from kitctl.deploy.rendered_site import require_site_dir
    from kitctl.support.gather import write_bundle
    from kitctl.support.sources import engine_sources

    site = require_site_dir(site_dir)
    project = load_project(site)
    manifest = write_bundle(out, site, engine_sources(connect(host), project, site, host), lines=lines)
    missing = f"; could not gather: {', '.join(sorted(manifest['errors']))}" if manifest["errors"] else ""
    _out().print(f"support bundle written to {out} ({len(manifest['files'])} files, secrets redacted){missing}")
    return 0


def _out():
    from kitctl.console import out

    return out()


def _err():
    from kitctl.console import err

    return err()
