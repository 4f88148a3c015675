"""`kitctl export DIR`: the site's business data for the licensee's exit (orders, statements, ledger, catalog, rules).

Thin shell over kitctl.deploy.site_export, which runs the storefront's export in its
running container and writes the files (mode 0600) into DIR, checked against
the archive's SHA256SUMS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kitctl.cli.deploy import HOST, SITE_DIR
from kitctl.cli.options import JSON


def export(directory: Path = typer.Argument(..., help="A new or empty directory for the files (made mode 0700)."),
           site_dir: Path = SITE_DIR, host: Optional[str] = HOST, as_json: bool = JSON) -> None:
    """Export the site's orders, HQ's statements and ledger entries, catalog and price rules as CSV and JSON."""
    from rich.markup import escape

    from kitctl.console import out, print_json
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.site_export import export as run_export
    from kitctl.deploy.rendered_site import require_site_dir
    from kitctl.engine import connect

    project = load_project(require_site_dir(site_dir))
    manifest = run_export(connect(host), project, directory)
    if as_json:
        print_json(manifest)
        return
    for name, info in manifest["files"].items():
        out().print(f"{escape(name):<20} {info['rows']:>9} rows  {info['bytes']:>11} bytes")
    out().print(f"[green]exported[/] site {escape(str(manifest['site']))} to {escape(str(directory))} "
                "(checked against SHA256SUMS)")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
