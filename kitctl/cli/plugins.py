"""`kitctl plugins …`: list, enable, disable, configure and administer plugins of a site."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from kitctl.cli.deploy import HOST
from kitctl.cli.options import HQ_KEYS, JSON

app = typer.Typer(help="Licence-gated plugins: list, enable/disable, configure.", no_args_is_help=True)

SITE_DIR = typer.Option(Path("site"), "--site-dir", help="The site directory (licence, plugins.toml, secrets).", file_okay=False)


def _licence(site_dir: Path, hq_keys: Optional[Path]):
    """The newest licence (the site's own or the one HQ sent the agent), so `plugins` agrees with the shop."""
    import os

    from kitcore.sitedir import SiteDir
    from kitctl.siteplugins import SiteLicence, read_site_licence

    own = read_site_licence(site_dir, hq_keys)
    if own is None or not SiteDir(site_dir).is_rendered:
        return own
    from kitctl.deploy.newest_licence import newest_licence

    claims = newest_licence(site_dir, os.environ.get("KITCTL_DOCKER_HOST") or None, hq_keys).verified.claims
    return SiteLicence(claims.tier, tuple(claims.features))


@app.command("list")
def list_(site_dir: Path = SITE_DIR, hq_keys: Optional[Path] = HQ_KEYS, as_json: bool = JSON) -> None:
    """Installed plugins: version, the feature each needs, licensed or not, enabled, status."""
    from kitctl.console import out, print_json
    from kitctl.siteplugins import list_plugins

    rows = list_plugins(site_dir, _licence(site_dir, hq_keys))
    if as_json:
        print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Plugins")
    for column in ("name", "version", "licensed", "enabled", "status"):
        table.add_column(column, no_wrap=column != "status")
    for row in rows:
        licensed = "yes" if row["licensed"] else f"needs {row['needs_tier'] or 'HQ'}"
        table.add_row(row["name"], row["version"], licensed, _yes(row["enabled"]), escape(_short_status(row)))
    out().print(table)


@app.command()
def enable(name: str, site_dir: Path = SITE_DIR, hq_keys: Optional[Path] = HQ_KEYS) -> None:
    """Switch a licensed plugin on (refused, with the tier that grants it, when unlicensed)."""
    from kitctl.console import out
    from kitctl.siteplugins import enable as enable_plugin

    out().print(enable_plugin(site_dir, name, _licence(site_dir, hq_keys)))


@app.command()
def disable(name: str, site_dir: Path = SITE_DIR, hq_keys: Optional[Path] = HQ_KEYS) -> None:
    """Switch a plugin off for this site (its settings are kept)."""
    from kitctl.console import out
    from kitctl.siteplugins import disable as disable_plugin

    out().print(disable_plugin(site_dir, name, _licence(site_dir, hq_keys)))


@app.command()
def config(
    name: str,
    pairs: Optional[list[str]] = typer.Argument(None, help="key=value settings (key= to reset); none to show."),
    site_dir: Path = SITE_DIR,
    hq_keys: Optional[Path] = HQ_KEYS,
    as_json: bool = JSON,
) -> None:
    """Show or change a plugin's settings; secrets are stored 0600 and shown as ***."""
    from kitctl.siteplugins import configure, settings_saved_note

    shown = configure(site_dir, name, pairs or [], _licence(site_dir, hq_keys)) if pairs else _show(site_dir, name, hq_keys)
    _print_rows([{"setting": k, "value": v} for k, v in shown.items()], as_json, f"{name} settings", shown)
    if pairs:
        from kitctl.console import err, out

        (err() if as_json else out()).print(settings_saved_note(site_dir), markup=False, highlight=False)


@app.command()
def admin(
    name: str,
    action: str,
    pairs: Optional[list[str]] = typer.Argument(None, help="key=value arguments of the action."),
    site_dir: Path = SITE_DIR,
    hq_keys: Optional[Path] = HQ_KEYS,
    database_url: Optional[str] = typer.Option(None, "--database-url", help="Site database URL (default: $KIT_DATABASE_URL)."),
    host: Optional[str] = HOST,
    as_json: bool = JSON,
) -> None:
    """Run a plugin's operator action, e.g. `admin coupons add code=SPRING percent=10 max_uses=100`.

    On a deployed site (no database URL given) the running storefront runs it, under the licence the shop goes by."""
    url = database_url or os.environ.get("KIT_DATABASE_URL")
    if url is None and _deployed(site_dir):
        rows = _in_stack(site_dir, host, name, action, pairs or [])
    else:
        from kitctl.siteplugins import run_admin

        rows = run_admin(site_dir, name, action, pairs or [], url, _licence(site_dir, hq_keys))
    _print_rows(rows, as_json, f"{name} {action}", rows)


@app.command("new")
def new(
    name: str = typer.Argument(..., help="The plugin's name (lowercase letters, digits, '-'); also its licence feature."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to create the package folder kitctl-NAME.", file_okay=False),
) -> None:
    """Scaffold a plugin package: entry point, a product-page line, an event handler with its own table, a setting, tests."""
    from kitctl.console import out
    from kitctl.plugin_scaffold import new_plugin

    target = new_plugin(name, directory)
    out().print(f"created {target} (test it: python -m pytest {target / 'tests'})", markup=False, highlight=False)


def _deployed(site_dir: Path) -> bool:
    from kitcore.sitedir import SiteDir

    return SiteDir(site_dir).is_rendered


def _in_stack(site_dir: Path, host: Optional[str], name: str, action: str, pairs: list[str]) -> list[dict]:
    from kitctl.deploy.admin import plugin_action
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect
    from kitctl.siteplugins import split_pairs

    values = split_pairs(pairs)
    return plugin_action(connect(host), load_project(site_dir), name, action, values)


def _show(site_dir: Path, name: str, hq_keys: Optional[Path]) -> dict:
    from kitctl.siteplugins import _installed, masked_settings

    info = _installed(site_dir, name, _licence(site_dir, hq_keys), None)
    return masked_settings(site_dir, name, info.settings)


def _print_rows(rows: list[dict], as_json: bool, title: str, data: object) -> None:
    from kitctl.console import out, print_json

    if as_json:
        print_json(data)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    columns = list(rows[0]) if rows else []
    for index, column in enumerate(columns):
        table.add_column(column, no_wrap=index == 0)
    for row in rows:
        table.add_row(*(escape("" if row[c] is None else str(row[c])) for c in columns))
    out().print(table if rows else "nothing to show")


def _short_status(row: dict) -> str:
    """The table's status cell: the full reason is in --json."""
    if row["loaded"]:
        return "loaded"
    if not row["licensed"] and row["version"] != "?":
        return "off: not licensed"
    if not row["enabled"] and row["version"] != "?":
        return "off: disabled"
    return row["status"]


def _yes(value: bool) -> str:
    return "yes" if value else "no"
