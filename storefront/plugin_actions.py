"""A licensed plugin's operator actions (e.g. add a coupon), run by the storefront itself.

The admin pages and `python -m storefront plugin-admin` (what `kitctl plugins
admin` runs inside the container) both come here, so they go by the licence
the shop goes by: the features in the site database, which HQ's heartbeat
updates. A plugin the licence does not grant is refused with its one-line reason.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from plugins.contract import AdminAction, Plugin


class ActionRefused(Exception):
    """One line a person can act on; nothing was changed."""


def plugin_of(host: Any, name: str) -> "Plugin":
    """The loaded plugin `name`, or ActionRefused with the host's reason (not licensed, disabled, not installed)."""
    plugin = host.plugin(name)
    if plugin is None:
        raise ActionRefused(host.refused.get(name) or f"{name} is not licensed for this site")
    return plugin


def action_of(plugin: "Plugin", action: str) -> "AdminAction":
    actions = plugin.admin_actions()
    if action not in actions:
        known = ", ".join(sorted(actions)) or "none"
        raise ActionRefused(f"{plugin.manifest.name} has no action {action!r} (actions: {known})")
    return actions[action]


def run_action(host: Any, engine: "Engine", name: str, action: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate `values`, let the plugin create its tables, run the action in one transaction: its rows."""
    from pydantic import ValidationError
    from sqlalchemy.orm import Session

    from kitcore.errors import InvalidInput
    from plugins.checks import first_error

    plugin = plugin_of(host, name)
    spec = action_of(plugin, action)
    try:
        args = spec.arguments.model_validate({k: v for k, v in values.items() if v not in (None, "")})
    except ValidationError as exc:
        raise ActionRefused(f"{name} {action}: {first_error(exc)}") from None
    plugin.prepare_database(engine)
    try:
        with Session(engine) as session, session.begin():
            return spec.rows(session, args)
    except InvalidInput as exc:
        raise ActionRefused(str(exc)) from None


def main(args: list[str]) -> int:
    """`python -m storefront plugin-admin NAME ACTION [JSON-ARGS]`: rows as JSON; a refusal is one line, exit 2."""
    if len(args) not in (2, 3):
        print("usage: python -m storefront plugin-admin NAME ACTION [JSON-ARGUMENTS]", file=sys.stderr)
        return 2
    try:
        values = json.loads(args[2]) if len(args) == 3 else {}
        if not isinstance(values, dict):
            raise ValueError("the arguments must be a JSON object")
        print(json.dumps(_run_here(args[0], args[1], values)))
    except (ActionRefused, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_here(name: str, action: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """In the storefront container: its database, its plugin choice, the licence the shop reads."""
    from sitedb.engine import make_engine, session_factory
    from storefront.plugin_adapter import load_host
    from storefront.settings import StorefrontSettings
    from storefront.state import read_licence

    settings = StorefrontSettings()
    engine = make_engine(settings.resolved_database_url())
    try:
        with session_factory(engine)() as session:
            licence = read_licence(session)
        host = load_host(licence.features, settings.plugin_choice(), settings.plugin_config_dir)
        try:
            return run_action(host, engine, name, action, values)
        finally:
            getattr(host, "close", lambda: None)()
    finally:
        engine.dispose()
