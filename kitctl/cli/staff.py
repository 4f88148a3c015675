"""`kitctl admin list | create NAME --role … | reset-password NAME | disable NAME`: the shop's staff, from the host.

Thin shell over kitctl.deploy.admin.staff, which runs the storefront's own staff
command inside its running container. Generated passwords are printed once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from kitctl.cli.deploy import HOST, SITE_DIR
from kitctl.cli.options import JSON

app = typer.Typer(help="Staff accounts of the shop (inside the running storefront).", no_args_is_help=True)
ROLE = typer.Option("admin", "--role", help="admin, operator or finance.")


def _staff(site_dir: Path, host: Optional[str], *args: str) -> str:
    from kitctl.deploy.admin import staff
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.rendered_site import require_site_dir
    from kitctl.engine import connect

    return staff(connect(host), load_project(require_site_dir(site_dir)), list(args))


def _out():
    from kitctl.console import out

    return out()


@app.command("list")
def list_(site_dir: Path = SITE_DIR, host: Optional[str] = HOST, as_json: bool = JSON) -> None:
    """Every staff account: name, role, disabled."""
    from rich.markup import escape

    rows = json.loads(_staff(site_dir, host, "list"))
    if as_json:
        from kitctl.console import print_json

        print_json(rows)
        return
    for row in rows:
        state = "[red]disabled[/]" if row["disabled"] else "[green]active[/]"
        _out().print(f"{escape(row['username']):<32} {escape(row['role']):<9} {state}")


@app.command()
def create(name: str = typer.Argument(..., help="Username (3-32 letters, digits, . _ -)."), role: str = ROLE,
           site_dir: Path = SITE_DIR, host: Optional[str] = HOST) -> None:
    """Create an account; its generated password is shown once."""
    _shown_once(name, _staff(site_dir, host, "create", name, role))


@app.command("reset-password")
def reset_password(name: str = typer.Argument(..., help="Username."), site_dir: Path = SITE_DIR,
                   host: Optional[str] = HOST) -> None:
    """A new generated password (shown once); the account's sessions end."""
    _shown_once(name, _staff(site_dir, host, "reset-password", name))


@app.command()
def disable(name: str = typer.Argument(..., help="Username."), site_dir: Path = SITE_DIR,
            host: Optional[str] = HOST) -> None:
    """Disable the account and end its sessions (the last enabled admin cannot be)."""
    from rich.markup import escape

    _out().print(escape(_staff(site_dir, host, "disable", name)))


def _shown_once(name: str, password: str) -> None:
    from rich.markup import escape

    _out().print(f"user [bold]{escape(name)}[/], password [bold]{escape(password)}[/]")
    _out().print("[yellow]this password is shown only this once: keep it now[/]")
