"""What `kitctl plugins …` does, as functions tests call directly.

The site dir (`kitcore.sitedir.SiteDir`) holds the licence (written by render), the site's choices
(`plugins.toml`) and plugin secrets (`secrets/plugins/NAME.json`, 0600).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir
from plugins.checks import first_error
from plugins.contract import secret_fields

if TYPE_CHECKING:
    from plugins.contract import Manifest
    from plugins.host import Installed, PluginHost

MASK = "***"
# Storefront and agent read plugins.toml and the secrets files at start (mounted, see kitctl.render.plugin_config).
APPLY = "run `kitctl up` to apply it (it restarts the storefront and the agent)"


@dataclass(frozen=True)
class SiteLicence:
    tier: str
    features: tuple[str, ...]


def read_site_licence(site_dir: Path, hq_keys: Path | None) -> SiteLicence | None:
    """The site's verified licence, None when it has none yet; a one-line error when it does not verify."""
    from kitctl.licence.given import require_hq_keys
    from kitcore.licence.token import verify_licence

    path = SiteDir(site_dir).licence_token  # where render stores the licence it rendered with
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the licence at {path}: {type(exc).__name__}") from None
    site_keys = SiteDir(site_dir).hq_keys  # the keys render pinned for this site
    verified = verify_licence(token, require_hq_keys(hq_keys or (site_keys if site_keys.is_file() else None)))
    return SiteLicence(verified.claims.tier, tuple(verified.claims.features))


def load_host(site_dir: Path, licence: SiteLicence | None, sources: Any = None) -> PluginHost:
    from plugins.host import PluginHost

    features = licence.features if licence else ()
    return PluginHost.load(features, None, site_dir, "kitctl", tier=licence.tier if licence else None, sources=sources)


def stack_fragments_for_site(site_dir: Path, licence: SiteLicence | None) -> dict[str, dict[str, Any]]:
    """Extra compose services/volumes/env the site's licensed, enabled plugins add (for render and status)."""
    return load_host(site_dir, licence).stack_fragments()


def list_plugins(site_dir: Path, licence: SiteLicence | None, sources: Any = None) -> list[dict[str, Any]]:
    """One row per installed plugin: version, feature, licensed, enabled, status, masked settings."""
    from kitcore.licence.tiers import lowest_tier_with
    from plugins.host import licence_refusal
    from plugins.site_config import read_choice

    host = load_host(site_dir, licence, sources)
    disabled = set(read_choice(site_dir).disabled)
    granted = set(licence.features) if licence else set()
    rows = []
    for name, info in sorted(host.installed.items()):
        refusal = licence_refusal(_manifest_view(info), granted, licence.tier if licence else None)
        rows.append({
            "needs_tier": lowest_tier_with(info.feature),
            "name": name, "version": info.version, "feature": info.feature, "origin": info.origin,
            "licensed": refusal is None, "enabled": name not in disabled,
            "loaded": name in host.loaded, "status": "loaded" if name in host.loaded else host.refused.get(name, ""),
            "settings": masked_settings(site_dir, name, info.settings),
        })
    for name, reason in sorted(host.refused.items()):
        if name not in host.installed:  # failed to import: still listed, with why
            rows.append({"needs_tier": None, "name": name, "version": "?", "feature": "?", "origin": "?", "licensed": False,
                         "enabled": False, "loaded": False, "status": reason, "settings": {}})
    return rows


def enable(site_dir: Path, name: str, licence: SiteLicence | None, sources: Any = None) -> str:
    """Switch a licensed plugin on; refuse an unlicensed one naming the tier that would allow it."""
    from plugins.host import licence_refusal
    from plugins.site_config import read_choice, write_choice

    info = _installed(site_dir, name, licence, sources)
    if licence is None:
        raise InvalidInput(f"no licence at {SiteDir(site_dir).licence_token}: run `kitctl up` first")
    refusal = licence_refusal(_manifest_view(info), set(licence.features), licence.tier)
    if refusal:
        raise InvalidInput(refusal)
    with SiteDir(site_dir).locked():
        choice = read_choice(site_dir)
        if name not in choice.disabled:
            return f"{name} is already enabled"
        choice.disabled.remove(name)
        write_choice(site_dir, choice)
    services = _services_of(site_dir, name, licence, sources)
    return f"{name} enabled; " + (f"it adds {', '.join(services)}: run `kitctl up` to start it" if services else APPLY)


def disable(site_dir: Path, name: str, licence: SiteLicence | None, sources: Any = None) -> str:
    from plugins.site_config import read_choice, write_choice

    _installed(site_dir, name, licence, sources)
    services = _services_of(site_dir, name, licence, sources)
    with SiteDir(site_dir).locked():
        choice = read_choice(site_dir)
        if name in choice.disabled:
            return f"{name} is already disabled"
        choice.disabled.append(name)
        site_dir.mkdir(parents=True, exist_ok=True)
        write_choice(site_dir, choice)
    return f"{name} disabled; " + (f"run `kitctl up` to remove {', '.join(services)} (its volumes are kept)" if services else APPLY)


def _services_of(site_dir: Path, name: str, licence: SiteLicence | None, sources: Any) -> list[str]:
    """The compose services plugin `name` adds as the site stands now (a change of them needs `kitctl up`)."""
    fragments, _ = load_host(site_dir, licence, sources).plugin_fragments()
    return sorted(fragments.get(name, {}).get("services", {}))


def configure(site_dir: Path, name: str, pairs: list[str], licence: SiteLicence | None, sources: Any = None) -> dict[str, Any]:
    """Validate key=value pairs against the plugin's schema, then store them (secrets 0600).

    `key=` (empty) removes a stored value so the default applies again.
    Returns the settings as shown to people (secrets masked).
    """
    schema = _installed(site_dir, name, licence, sources).settings
    updates = parse_pairs(pairs, schema, name)
    with SiteDir(site_dir).locked():  # a render swapping the directory meanwhile must not drop what is written here
        _store_settings(site_dir, name, schema, updates)
    return masked_settings(site_dir, name, schema)


def _store_settings(site_dir: Path, name: str, schema: Any, updates: dict[str, Any]) -> None:
    from plugins.site_config import raw_settings, read_choice, read_secrets, write_choice, write_secrets

    merged = raw_settings(site_dir, name)
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    try:
        normalised = schema.model_validate(merged).model_dump(mode="json")
    except Exception as exc:
        raise InvalidInput(f"{name} settings refused: {first_error(exc)}") from None
    secret = secret_fields(schema)
    choice = read_choice(site_dir)
    choice.settings[name] = {k: normalised[k] for k in merged if k not in secret}
    secrets = {k: v for k, v in merged.items() if k in secret}
    site_dir.mkdir(parents=True, exist_ok=True)
    if secrets or read_secrets(site_dir, name):
        write_secrets(site_dir, name, secrets)
    write_choice(site_dir, choice)


def settings_saved_note(site_dir: Path) -> str:
    """One line after `configure`: what applies the change; renders compose.yaml again when a new secrets file
    must be named in it (the first secret a plugin gets), so that plain `kitctl up` delivers it."""
    from kitcore.errors import KitError
    from kitctl.render.api import deliver_plugin_secrets

    try:
        rendered = deliver_plugin_secrets(site_dir)
    except KitError as exc:
        return f"saved; compose.yaml could not be rendered again ({exc}): run `kitctl up` with the site's inputs to apply it"
    return "saved" + ("; compose.yaml now names the new secrets file" if rendered else "") + f"; {APPLY}"


def parse_pairs(pairs: list[str], schema: Any, plugin: str) -> dict[str, Any]:
    """key=value strings to values: text for text fields, JSON (or text) for the others."""
    updates: dict[str, Any] = {}
    for key, raw in split_pairs(pairs).items():
        if key not in schema.model_fields:
            known = ", ".join(schema.model_fields) or "none"
            raise InvalidInput(f"{plugin} has no setting {key!r} (settings: {known})")
        if raw == "":
            updates[key] = None
        elif _is_text(schema.model_fields[key].annotation):
            updates[key] = raw
        else:
            try:
                updates[key] = json.loads(raw)
            except ValueError:
                updates[key] = raw
    return updates


def split_pairs(pairs: list[str]) -> dict[str, str]:
    """key=value strings as they were typed; a one-line refusal for one without a key."""
    split: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"expected key=value, got {pair!r}")
        split[key.strip()] = raw
    return split


def masked_settings(site_dir: Path, name: str, schema: Any) -> dict[str, Any]:
    """Current settings with defaults; secret values replaced by *** (or None when unset)."""
    from plugins.site_config import raw_settings

    raw = raw_settings(site_dir, name)
    secret = secret_fields(schema)
    shown: dict[str, Any] = {}
    for key, info in schema.model_fields.items():
        if key in secret:
            shown[key] = MASK if raw.get(key) else None
        else:
            shown[key] = raw.get(key, info.get_default(call_default_factory=True))
    return json.loads(json.dumps(shown, default=str))


def run_admin(site_dir: Path, name: str, action: str, pairs: list[str], database_url: str | None,
              licence: SiteLicence | None, sources: Any = None) -> list[dict[str, Any]]:
    """Run a plugin's operator action on the site database, in one transaction."""
    from sqlalchemy.orm import Session

    from sitedb.engine import make_engine

    host = load_host(site_dir, licence, sources)
    plugin = host.plugin(name)
    if plugin is None:
        raise InvalidInput(host.refused.get(name) or f"no plugin named {name!r} is installed")
    actions = plugin.admin_actions()
    if action not in actions:
        raise InvalidInput(f"{name} has no action {action!r} (actions: {', '.join(sorted(actions)) or 'none'})")
    if not database_url:
        raise InvalidInput("no site database: pass --database-url or set KIT_DATABASE_URL")
    spec = actions[action]
    args = _validated_args(spec.arguments, parse_pairs(pairs, spec.arguments, f"{name} {action}"), name, action)
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        engine = make_engine(database_url)
    except (ArgumentError, ValueError):
        raise InvalidInput("the site database URL is not a valid SQLAlchemy URL") from None
    try:
        plugin.prepare_database(engine)
        with Session(engine) as session, session.begin():
            return spec.rows(session, args)
    except SQLAlchemyError as exc:  # the message names host and port, never the password
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise InvalidInput(f"site database: {type(exc).__name__}: {detail}") from None
    finally:
        engine.dispose()


def _validated_args(model: Any, values: dict[str, Any], name: str, action: str) -> Any:
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except Exception as exc:
        raise InvalidInput(f"{name} {action}: {first_error(exc)}") from None


def _installed(site_dir: Path, name: str, licence: SiteLicence | None, sources: Any) -> Installed:
    host = load_host(site_dir, licence, sources)
    if name not in host.installed:
        known = ", ".join(sorted(host.installed)) or "none"
        raise InvalidInput(f"no plugin named {name!r} is installed (installed: {known})")
    return host.installed[name]


def _manifest_view(info: Any) -> Manifest:
    """A Manifest carrying what `licence_refusal` reads."""
    from plugins.contract import Manifest

    return Manifest(name=info.name, version=info.version, feature=info.feature)


def _is_text(annotation: Any) -> bool:
    from pydantic import SecretStr

    if annotation in (str, SecretStr):
        return True
    args = [a for a in getattr(annotation, "__args__", ()) or () if a is not type(None)]
    return bool(args) and all(a in (str, SecretStr) for a in args)
