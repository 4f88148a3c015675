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
    from kitctl.render.unchanged import rendered

    result = render_site(site_params)
    rendered(result)
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
def plan(site_params: dict[str, Any], as_json: bool = JSON,
         diff: bool = typer.Option(False, "--diff", help="Also show each changed file's diff (never kitctl.lock's).")) -> None:
    """Show what `kitctl render` would change: inputs changed, services to recreate, files changed (no writes)."""
    from kitctl.console import print_json
    from kitctl.render import plan_site

    result = plan_site(site_params)
    if as_json:
        print_json(result.to_json())
        return
    _print_summary(result)
    if diff and result.files:
        _print_diffs(result.files)


def _print_summary(result: Any) -> None:
    """What a person checks first: which inputs, which services, which files."""
    from rich.markup import escape

    from kitctl.console import out

    if not result.changed:
        out().print("no changes: the site directory already matches these inputs")
        return
    inputs = [f"{k} {_shown(old)} → {_shown(new)}" for k, (old, new) in result.inputs.items()]
    lines = [
        ("inputs changed", ", ".join(inputs) or "none"),
        ("services to create", ", ".join(result.acting("create"))),
        ("services to recreate", ", ".join(result.acting("recreate")) or "none"),
        ("services to remove", ", ".join(result.acting("remove"))),
        ("services unchanged", ", ".join(result.acting("unchanged"))),
        ("files changed", ", ".join(f"{f.path} ({f.change})" for f in result.files) or "none"),
        ("secrets to create", ", ".join(result.secrets_to_create)),
    ]
    for label, text in lines:
        if text:
            out().print(f"[bold]{label}:[/] {escape(text)}", highlight=False)
    if result.files:
        out().print("[dim](--diff shows the file diffs)[/]")


def _shown(value: Any) -> str:
    return "(default)" if value is None else str(value) if not isinstance(value, list) else ",".join(map(str, value))


def _print_diffs(files: Any) -> None:
    from kitctl.console import out

    if not out().is_terminal:  # piped: the exact unified diff, tabs and all (usable with `patch`)
        import sys

        sys.stdout.write("".join(change.diff for change in files))
        sys.stdout.flush()
        return
    from rich.text import Text

    styles = {"+": "green", "-": "red", "@": "cyan"}
    for change in files:
        for line in change.diff.splitlines():
            style = "bold" if line.startswith(("+++", "---")) else styles.get(line[:1], "")
            out().print(Text(line, style=style), highlight=False)  # Text: file content is never markup


def register(app: typer.Typer) -> None:
    """Add `render` and `plan` to the root app."""
    app.command("render")(render)
    app.command("plan")(plan)
