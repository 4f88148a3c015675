"""`render_site` and `plan_site`: what `kitctl render`, `plan` and `up` call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kitcore.errors import InvalidInput, KitError
from kitcore.sitedir import SiteDir
from kitctl.render.site_files import RenderedSite, build_site
from kitctl.render.changes import Plan, diff_files, input_changes, service_changes
from kitctl.render.plugin_config import declared_secret_names, secret_names
from kitctl.render.site_secrets import missing_secrets
from kitctl.render.writer import read_site_files, write_site
from kitctl.site.inputs import SiteInputs
from kitctl.site.resolve import ResolvedSite, resolve_site


@dataclass(frozen=True)
class RenderResult:
    site_dir: Path
    changed: bool  # False: the directory already held exactly this render; nothing was written
    site: ResolvedSite
    rendered: RenderedSite
    secrets_created: list[str]

    def summary(self) -> dict[str, Any]:
        """What is safe to print: no secret values, no token."""
        lic = self.site.licence
        return {
            "site_dir": str(self.site_dir),
            "changed": self.changed,
            "site_id": self.site.site_id,
            "domain": self.site.domain.unicode,
            "licence": {"jti": lic.claims.jti, "tier": lic.claims.tier, "status": lic.status, "days_left": lic.days_left},
            "tls": self.site.inputs.effective_tls,
            "files": sorted(self.rendered.files),
            "secrets_created": self.secrets_created,
            "services": self.rendered.service_hashes,
        }


def as_inputs(inputs: SiteInputs | Mapping[str, Any]) -> SiteInputs:
    """Accept validated inputs or a mapping of flag values (None = not given)."""
    if isinstance(inputs, SiteInputs):
        return inputs
    from kitctl.site.load import load_site_inputs

    return load_site_inputs(inputs)


def render_site(inputs: SiteInputs | Mapping[str, Any], now: float | None = None,
                drop_unlicensed: bool = False) -> RenderResult:
    """Validate, verify the licence, render, and write the site dir atomically (`drop_unlicensed`: see
    kitctl.site.resolve.resolve_site)."""
    site = resolve_site(newest_licence(as_inputs(inputs), now), now=now, carried=carried_plugins,
                        drop_unlicensed=drop_unlicensed)
    site_dir = Path(site.inputs.site_dir)
    if site_dir.exists() and not site_dir.is_dir():
        raise InvalidInput(f"site dir {site_dir} exists and is not a directory")
    rendered = build_site(site, site_fragments(site), secret_names(site_dir))
    try:
        written = write_site(site_dir, rendered.files, site.licence.token)
    except OSError as exc:
        raise KitError(f"cannot write site dir {site_dir}: {exc.strerror or exc}; the previous one is unchanged") from None
    return RenderResult(site_dir.absolute(), written.changed, site, rendered, written.secrets_created)


def plan_site(inputs: SiteInputs | Mapping[str, Any], now: float | None = None) -> Plan:
    """What `render_site` would change, computed without writing anything."""
    import yaml

    from kitctl.render.yamlload import load_yaml

    site = resolve_site(newest_licence(as_inputs(inputs), now), now=now, carried=carried_plugins)
    site_dir = Path(site.inputs.site_dir)
    rendered = build_site(site, site_fragments(site), secret_names(site_dir))
    current = read_site_files(site_dir)
    compose_name = SiteDir(site_dir).compose.name
    try:
        old_compose = load_yaml(current[compose_name]) if compose_name in current else None
    except yaml.YAMLError:
        old_compose = None
    lock_name = SiteDir(site_dir).lock_file.name
    return Plan(
        files=diff_files(current, rendered.files, frozenset({lock_name})),
        services=service_changes(old_compose if isinstance(old_compose, dict) else None, rendered.compose),
        secrets_to_create=missing_secrets(SiteDir(site_dir).secrets),
        inputs=input_changes(_lock_inputs(current.get(lock_name)), _lock_inputs(rendered.files[lock_name])),
    )


def _lock_inputs(lock: bytes | None) -> dict[str, Any] | None:
    import json

    try:
        inputs = json.loads(lock or b"null")
    except ValueError:
        return None
    inputs = inputs.get("inputs") if isinstance(inputs, dict) else None
    return inputs if isinstance(inputs, dict) else None


def carried_plugins(inputs: SiteInputs, claims: Any, image_tag: str) -> Any:
    """The third-party plugins the storefront and agent images this site will run carry (from their label)."""
    from kitctl.render.image_plugins import carried_by_images
    from kitctl.render.stack import image_prefix

    return carried_by_images(inputs.site_dir, inputs.docker_host, image_prefix(inputs.registry, claims), image_tag)


def site_fragments(site: ResolvedSite) -> dict[str, dict[str, Any]]:
    """Stack fragments of the plugins this licence grants and the site enabled (plugins.toml, --plugin)."""
    from kitctl.render.plugin_stack import load_fragments

    claims = site.licence.claims
    return load_fragments(claims.features, claims.tier, list(site.plugins) or None, Path(site.inputs.site_dir))


def newest_licence(inputs: SiteInputs, now: float | None = None) -> SiteInputs:
    """The inputs with the site's stored licence instead, when that one is newer and for the same site.

    HQ upgrades and downgrades a licence by heartbeat and `kitctl up` stores the
    new token in the site dir: a later render from an older token (a site.toml
    naming the first licence file) must not undo that. Same rule as the agent's.
    """
    from kitcore.licence.keys import load_jwks
    from kitctl.licence.given import read_token_arg
    from kitcore.licence.token import verify_licence

    stored_path = SiteDir(Path(inputs.site_dir)).licence_token
    if not inputs.licence or inputs.hq_keys is None or not stored_path.is_file():
        return inputs
    try:
        stored = stored_path.read_text(encoding="ascii").strip()
        given = read_token_arg(inputs.licence)
        if stored == given.strip():
            return inputs
        keys = load_jwks(inputs.hq_keys)
        old, new = verify_licence(given, keys, now=now).claims, verify_licence(stored, keys, now=now).claims
    except (OSError, UnicodeDecodeError, KitError):
        return inputs  # the given licence's own errors are reported by resolve_site
    if new.sub == old.sub and new.iat > old.iat:
        return inputs.model_copy(update={"licence": stored})
    return inputs


def rerender_site(site_dir: Path, licence_token: str | None = None, now: float | None = None) -> RenderResult:
    """Render again from the inputs kitctl.lock recorded, with `licence_token` when given (newer, from HQ).

    Plugins the site asked for by name that the licence no longer allows (their
    manifest's feature, which need not be the plugin's name) are dropped (a
    downgrade disables them) instead of refusing the render.
    """
    import json

    site_dir = Path(site_dir).absolute()
    site = SiteDir(site_dir)
    try:
        lock = json.loads(site.lock_file.read_text(encoding="utf-8"))
        site_json = json.loads(site.site_json.read_text(encoding="utf-8"))
        token = licence_token or site.licence_token.read_text(encoding="ascii").strip()
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot render {site_dir} again: {type(exc).__name__} reading its files") from None
    recorded = lock.get("inputs") if isinstance(lock, dict) else None
    if not isinstance(recorded, dict):
        raise InvalidInput(f"{site_dir} was rendered by an older kitctl: run `kitctl up` once with the site's inputs "
                           "(--licence, --name, --domain … or site.toml)")
    hq_keys = site.hq_keys
    flags = {**recorded, "site_dir": str(site_dir), "licence": token, "hq_keys": str(hq_keys)}
    logo = site_json.get("logo") if isinstance(site_json, dict) else None
    flags["logo"] = str(site.branding / logo) if isinstance(logo, str) and logo else None
    return render_site(flags, now=now, drop_unlicensed=True)


def deliver_plugin_secrets(site_dir: Path, now: float | None = None) -> bool:
    """Render again when compose.yaml does not name exactly the plugin secrets files the site has.

    `kitctl plugins config` creates a plugin's secrets file the first time a
    secret is set; the stack must name it before `kitctl up` can deliver it.
    A change of contents needs no render (up recreates the services that read
    it). True when it rendered; nothing happens for a site never rendered.
    """
    import yaml

    from kitctl.render.yamlload import load_yaml

    site_dir = Path(site_dir)
    compose_path = SiteDir(site_dir).compose
    if not compose_path.is_file():
        return False
    try:
        declared = declared_secret_names(load_yaml(compose_path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        declared = None
    if declared == secret_names(site_dir):
        return False
    rerender_site(site_dir, now=now)
    return True
