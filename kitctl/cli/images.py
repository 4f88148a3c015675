"""`kitctl images build|push` and `kitctl bundle save|load`: thin shells over kitctl.images."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from kitctl.console import line_progress

from kitcore import __version__

app = typer.Typer(help="Build the stack's container images and push them to a registry.", no_args_is_help=True)
bundle_app = typer.Typer(help="Offline install: every image of a version in one checksummed archive.", no_args_is_help=True)

SERVICE = typer.Option(None, "--service", "-s", help="Only this service (repeatable). Default: all.")
VERSION = typer.Option(__version__, "--version", help="Kit version the image tags follow.")
DOCKER_HOST = typer.Option(None, "--docker-host", envvar="DOCKER_HOST", help="Engine URL: unix://… or ssh://user@host[:port].")
JSON = typer.Option(False, "--json", help="Print JSON for machines instead of a table.")
PASSWORD_ENV = "KITCTL_REGISTRY_PASSWORD"


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


@app.command("build")
def build(
    service: Optional[list[str]] = SERVICE,
    version: str = VERSION,
    base_image: str = typer.Option("kitctl/base:bookworm", "--base-image", help="Base of every image (e.g. python:3.11-slim elsewhere)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Source checkout to build from (default: this kitctl's).", file_okay=False),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild every layer."),
    jobs: int = typer.Option(2, "--jobs", min=1, max=8,
                             help="Images built at once (those of one Dockerfile one after another)."),
    plugin_wheel: Optional[list[Path]] = typer.Option(
        None, "--plugin-wheel", help="A third-party plugin wheel, or a folder of them, to install into the storefront "
                                     "and agent images (repeatable)."),
    docker_host: Optional[str] = DOCKER_HOST,
    json_out: bool = JSON,
) -> None:
    """Build kitctl/<service>:<version> images (the base image too when missing)."""
    from kitctl.console import out, print_json
    from kitctl.images import select_services
    from kitctl.images.build import build_images
    from kitctl.engine import connect
    from kitctl.images.checkout import checked_source_dir

    from kitctl.images.plugin_wheels import checked_wheels

    services = select_services(service)
    root = checked_source_dir(source)
    wheels = checked_wheels(list(plugin_wheel or []), root)  # before Docker: a bad wheel changes nothing
    client = connect(docker_host, timeout=300)
    with line_progress(side_by_side=True) as on_line:
        built = build_images(client, root, version, services, base_image, on_line, no_cache, wheels, jobs)
    if json_out:
        print_json([b.as_dict() for b in built])
        return
    from rich.table import Table

    table = Table("service", "image", "size", "build time", "plugins")
    for b in built:
        table.add_row(b.service, b.tag, _mb(b.size_bytes), f"{b.seconds:.1f} s", ", ".join(b.plugins) or "-")
    out().print(table)


def read_password(password_stdin: bool) -> str:
    """The registry password from stdin (--password-stdin) or KITCTL_REGISTRY_PASSWORD; never a flag."""
    from kitcore.errors import InvalidInput

    if password_stdin:
        if sys.stdin is None or sys.stdin.isatty():
            raise InvalidInput("--password-stdin given but stdin is a terminal; pipe the password in")
        return sys.stdin.readline()
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    raise InvalidInput(f"no registry password: pipe it with --password-stdin or set {PASSWORD_ENV}")


@app.command("push")
def push(
    registry: str = typer.Option(..., "--registry", help="Registry HOST[:PORT], e.g. 127.0.0.1:5000."),
    username: str = typer.Option(..., "--username", "-u", help="Registry user."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help=f"Read the password from stdin (else ${PASSWORD_ENV})."),
    service: Optional[list[str]] = SERVICE,
    version: str = VERSION,
    docker_host: Optional[str] = DOCKER_HOST,
    json_out: bool = JSON,
) -> None:
    """Push kitctl/<service>:<version> images as <registry>/kitctl/<service>:<version>."""
    from kitctl.console import out, print_json
    from kitctl.images import select_services
    from kitctl.engine import connect
    from kitctl.images.registry import checked_credentials, push_images

    services = select_services(service)
    creds = checked_credentials(registry, username, read_password(password_stdin))
    client = connect(docker_host, timeout=300)
    with line_progress() as on_line:
        pushed = push_images(client, services, version, creds, on_line)
    if json_out:
        print_json({"pushed": pushed})
    else:
        for ref in pushed:
            out().print(f"pushed {ref}")


@bundle_app.command("save")
def bundle_save(
    output: Path = typer.Option(..., "--output", "-o", help="Archive to write.", dir_okay=False),
    service: Optional[list[str]] = typer.Option(
        None, "--service", "-s", help="Only this service (repeatable). Default: the site's images (HQ's: --service hq)."),
    version: str = VERSION,
    docker_host: Optional[str] = DOCKER_HOST,
    json_out: bool = JSON,
) -> None:
    """Write a version's site images (not HQ's: `--service hq` for that) into one archive with a SHA-256 manifest."""
    from kitctl.console import out, print_json
    from kitctl.images import SITE_SERVICES, select_services
    from kitctl.images.bundle import save_bundle
    from kitctl.engine import connect

    services = select_services(service) if service else list(SITE_SERVICES)
    client = connect(docker_host, timeout=300)
    with line_progress() as on_line:
        entries = save_bundle(client, output, version, services, on_line)
    if json_out:
        print_json({"bundle": str(output), "images": [e.__dict__ for e in entries]})
    else:
        total = sum(e.size for e in entries)
        out().print(f"wrote {output} ({len(entries)} images, {_mb(total)})")
        plugins = sorted({p["name"] for e in entries for w in e.plugins for p in w.get("plugins", [])})
        if plugins:
            out().print(f"third-party plugins in the images: {', '.join(plugins)}")


@bundle_app.command("load")
def bundle_load(
    bundle: Path = typer.Argument(..., help="Archive written by `kitctl bundle save`.", dir_okay=False),
    docker_host: Optional[str] = DOCKER_HOST,
) -> None:
    """Verify a bundle's checksums, then load its images (nothing is loaded if any differs)."""
    from kitctl.console import out
    from kitctl.images.bundle import load_bundle
    from kitctl.engine import connect

    client = connect(docker_host, timeout=300)
    with line_progress() as on_line:
        tags = load_bundle(bundle, client, on_line)
    out().print(f"loaded {', '.join(tags)}")


def register(root: typer.Typer) -> None:
    """Attach `images` and `bundle` to the root kitctl app (one call in kitctl/cli/__init__.py)."""
    root.add_typer(app, name="images")
    root.add_typer(bundle_app, name="bundle")
