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
HQ_URL_RE = re.compile(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?\Z")


def _spec(site_dir: Path, host: Optional[str], hq_url: Optional[str], interval: float):  # type: ignore[no-untyped-def]
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.rendered_site import require_site_dir
    from kitctl.service.unit import UnitSpec, kitctl_command
    from kitcore.errors import InvalidInput

    if hq_url is not None and not HQ_URL_RE.match(hq_url):
        raise InvalidInput(f"--hq-url {hq_url[:60]!r} is not an http(s) URL")
    root = require_site_dir(site_dir).absolute()
    return UnitSpec(project=load_project(root).name, site_dir=root, command=kitctl_command(), host=host,
                    hq_url=hq_url, interval=interval)


@app.command("unit")
def unit(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, hq_url: Optional[str] = HQ_URL,
         interval: float = INTERVAL) -> None:
    """Print the systemd unit `install` would write for this site."""
    from kitctl.service.unit import render

    typer.echo(render(_spec(site_dir, host, hq_url, interval)), nl=False)


@app.command("install")
def install(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, hq_url: Optional[str] = HQ_URL,
            interval: float = INTERVAL,
            unit_dir: Path = typer.Option(Path("/etc/systemd/system"), "--unit-dir", file_okay=False,
                                          help="Where the unit file goes.")) -> None:
    """Install the host service for this site: a systemd unit, enabled and started where systemd runs."""
    from kitctl.console import out
    from kitctl.service.unit import install as write_unit
    from kitctl.service.unit import shell_command

    spec = _spec(site_dir, host, hq_url, interval)
    path, started = write_unit(spec, unit_dir)
    if started:
        out().print(f"[green]installed and started[/] {spec.name} ({path})")
    else:
        out().print(f"wrote {path}; systemd does not manage this host (or --unit-dir was given): run "
                    f"`systemctl enable --now {spec.name}` there, or keep this running under your supervisor:\n"
                    f"  {shell_command(spec)}")


@app.command("run")
def run(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, hq_url: Optional[str] = HQ_URL,
        interval: float = INTERVAL, timeout: float = TIMEOUT,
        once: bool = typer.Option(False, "--once", help="One look for a new command, then exit.")) -> None:
    """Run the host service in the foreground (what the unit starts): upgrade when HQ asks, report back."""
    import logging
    import signal

    from kitctl.service.host import HostService, ServiceOptions

    spec = _spec(site_dir, host, hq_url, interval)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    service = HostService(ServiceOptions(site_dir=spec.site_dir, host=host, hq_url=hq_url, interval=interval,
                                         timeout=timeout))
    if once:
        service.once()
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: service.stop.set())
    service.run()
