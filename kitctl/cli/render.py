"""`kitctl render` and `kitctl plan`: thin shells over kitctl.render."""

from __future__ import annotations

from typing import Any

import typer

from kitctl.cli.options import JSON
from kitctl.cli.site_options import with_site_options


@with_site_options
def render(site_params: dict[str, Any], as_json: bool = JSON) -> None:
    """Render the site directory (compose stack, proxy config, branding, secrets, lock)."""
    from kitctl.console import out, print_json
    from kitctl.render import render_site

    result = render_site(site_params)
    if as_json:
        print_json(result.summary())
        return
    s = result.summary()
    verb = "rendered" if result.changed else "unchanged"
    out().print(f"[green]{verb}[/] {s['site_dir']}  site [bold]{s['site_id']}[/]  {s['domain']}  tls={s['tls']}")
    lic = s["licence"]
    colour = "yellow" if lic["status"] == "grace" else "green"
    out().print(f"licence {lic['jti']} tier {lic['tier']} [{colour}]{lic['status']}[/], {lic['days_left']} days left")
    if s["secrets_created"]:
        out().print(f"created secrets (mode 0600, not shown): {', '.join(s['secrets_created'])}")


@with_site_options
def plan(site_params: dict[str, Any], as_json: bool = JSON) -> None:
    """Show what `kitctl render` would change (file diffs, services to recreate) without writing."""
    from kitctl.console import print_json
    from kitctl.render import plan_site

    result = plan_site(site_params)
    if as_json:
        print_json(result.to_json())
        return
    _print_plan(result)


def _print_plan(result: Any) -> None:
    from kitctl.console import out

    if not result.changed:
        out().print("no changes: the site directory already matches these inputs")
        return
    if not out().is_terminal:  # piped: the exact unified diff, tabs and all (usable with `patch`)
        import sys

        sys.stdout.write("".join(change.diff for change in result.files))
        sys.stdout.flush()
    else:
        _print_coloured_diffs(result.files)
    _print_services(result)


def _print_coloured_diffs(files: Any) -> None:
    from rich.text import Text

    from kitctl.console import out

    styles = {"+": "green", "-": "red", "@": "cyan"}
    for change in files:
        for line in change.diff.splitlines():
            style = "bold" if line.startswith(("+++", "---")) else styles.get(line[:1], "")
            out().print(Text(line, style=style), highlight=False)  # Text: file content is never markup


def _print_services(result: Any) -> None:
    from rich.table import Table

    from kitctl.console import out

    table = Table("service", "action")
    for name, action in result.services.items():
        table.add_row(name, action)
    out().print(table)
    if result.secrets_to_create:
        out().print(f"secrets to create: {', '.join(result.secrets_to_create)}")


def register(app: typer.Typer) -> None:
    """Add `render` and `plan` to the root app."""
    app.command("render")(render)
    app.command("plan")(plan)
