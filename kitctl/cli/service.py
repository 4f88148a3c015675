"""`kitctl service install | unit | run`: the host service that runs the upgrades HQ rolls out.

Thin shell over kitctl.service: `install` writes (and where systemd runs,
enables) one unit per site; `run` is what the unit starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from kitctl.cli.deploy import HOST, SITE_DIR, TIMEOUT

app = typer.Typer(help="The host service: runs the kit upgrades HQ rolls out to this site (docs/deploy.md).",
                  no_args_is_help=True)
HQ_URL = typer.Option(None, "--hq-url", help="Where this host reaches HQ (default: the licence's hq_url).")
INTERVAL = typer.Option(5.0, "--interval", min=0.5, max=3600, help="Seconds between looks for a new command.")
WINDOW = typer.Option(None, "--window", help="Maintenance window HH:MM-HH:MM (e.g. 02:00-05:00; 23:00-02:00 "
                      "crosses midnight): HQ's upgrades wait for it. Default: any time.")
TIMEZONE = typer.Option("UTC", "--timezone", help="The window's time zone, e.g. Asia/Shanghai.")
AUTO_UPGRADE = typer.Option(True, "--auto-upgrade/--no-auto-upgrade",
                            help="--no-auto-upgrade: opt this site out of HQ's rollouts (HQ is told, and skips it).")
HQ_URL_RE = re.compile(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?\Z")


def _spec(site_dir: Path, host: Optional[str], hq_url: Optional[str], interval: float,  # type: ignore[no-untyped-def]
          window: Optional[str] = None, zone: str = "UTC", auto_upgrade: bool = True):
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.rendered_site import require_site_dir
    from kitctl.service.unit import UnitSpec, kitctl_command
    from kitcore.errors import InvalidInput
    from kitcore.upgrade_window import parse_window

    if hq_url is not None and not HQ_URL_RE.match(hq_url):
        raise InvalidInput(f"--hq-url {hq_url[:60]!r} is not an http(s) URL")
    if window is None and zone != "UTC":
        raise InvalidInput("--timezone needs --window")
    parsed = parse_window(window, zone) if window is not None else None
    root = require_site_dir(site_dir).absolute()
    return UnitSpec(project=load_project(root).name, site_dir=root, command=kitctl_command(), host=host,
                    hq_url=hq_url, interval=interval, window=str(parsed) if parsed else None,
                    auto_upgrade=auto_upgrade)


@app.command("unit")
def unit(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, hq_url: Optional[str] = HQ_URL,
         interval: float = INTERVAL, window: Optional[str] = WINDOW, zone: str = TIMEZONE,
         auto_upgrade: bool = AUTO_UPGRADE) -> None:
    """Print the systemd unit `install` would write for this site."""
    from kitctl.service.unit import render

    typer.echo(render(_spec(site_dir, host, hq_url, interval, window, zone, auto_upgrade)), nl=False)


@app.command("install")
def install(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, hq_url: Optional[str] = HQ_URL,
            interval: float = INTERVAL, window: Optional[str] = WINDOW, zone: str = TIMEZONE,
            auto_upgrade: bool = AUTO_UPGRADE,
            unit_dir: Path = typer.Option(Path("/etc/systemd/system"), "--unit-dir", file_okay=False,
                                          help="Where the unit file goes.")) -> None:
    """Install the host service for this site: a systemd unit, enabled and started where systemd runs.
    Run it again with another --window or --no-auto-upgrade to change them (HQ hears the change)."""
    from kitctl.console import out
    from kitctl.service.unit import install as write_unit
    from kitctl.service.unit import shell_command

    spec = _spec(site_dir, host, hq_url, interval, window, zone, auto_upgrade)
    path, started = write_unit(spec, unit_dir)
    if started:
        out().print(f"[green]installed and started[/] {spec.name} ({path})")
    else:
        out().print(f"wrote {path}; systemd does not manage this host (or --unit-dir was given): run "
                    f"`systemctl enable --now {spec.name}` there, or keep this running under your supervisor:\n"
                    f"  {shell_command(spec)}")


@app.command("run")
def run(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, hq_url: Optional[str] = HQ_URL,
        interval: float = INTERVAL, timeout: float = TIMEOUT, window: Optional[str] = WINDOW,
        zone: str = TIMEZONE, auto_upgrade: bool = AUTO_UPGRADE,
        once: bool = typer.Option(False, "--once", help="One look for a new command, then exit.")) -> None:
    """Run the host service in the foreground (what the unit starts): upgrade when HQ asks, report back."""
    import logging
    import signal

    from kitctl.service.host import HostService, ServiceOptions
    from kitcore.upgrade_window import window_from_text

    spec = _spec(site_dir, host, hq_url, interval, window, zone, auto_upgrade)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    service = HostService(ServiceOptions(site_dir=spec.site_dir, host=host, hq_url=hq_url, interval=interval,
                                         timeout=timeout, auto_upgrade=auto_upgrade,
                                         window=window_from_text(spec.window) if spec.window else None))
    if once:
        service.once()
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: service.stop.set())
    service.run()
