"""`render_site` and `plan_site`: what `kitctl render`, `plan` and `up` call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kitctl.errors import InvalidInput, KitError
from kitctl.render.build import COMPOSE, RenderedSite, build_site
from kitctl.render.plan import Plan, diff_files, service_changes
from kitctl.render.secrets import SECRETS_DIR, missing_secrets
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


def render_site(inputs: SiteInputs | Mapping[str, Any], now: float | None = None) -> RenderResult:
    """Validate, verify the licence, render, and write the site dir atomically."""
    site = resolve_site(as_inputs(inputs), now=now)
    rendered = build_site(site)
    site_dir = Path(site.inputs.site_dir)
    if site_dir.exists() and not site_dir.is_dir():
        raise InvalidInput(f"site dir {site_dir} exists and is not a directory")
    try:
        written = write_site(site_dir, rendered.files, site.licence.token)
    except OSError as exc:
        raise KitError(f"cannot write site dir {site_dir}: {exc.strerror or exc}; the previous one is unchanged") from None
    return RenderResult(site_dir.absolute(), written.changed, site, rendered, written.secrets_created)


def plan_site(inputs: SiteInputs | Mapping[str, Any], now: float | None = None) -> Plan:
    """What `render_site` would change, computed without writing anything."""
    import yaml

    from kitctl.render.yamlload import load_yaml

    site = resolve_site(as_inputs(inputs), now=now)
    rendered = build_site(site)
    site_dir = Path(site.inputs.site_dir)
    current = read_site_files(site_dir)
    try:
        old_compose = load_yaml(current[COMPOSE]) if COMPOSE in current else None
    except yaml.YAMLError:
        old_compose = None
    return Plan(
        files=diff_files(current, rendered.files),
        services=service_changes(old_compose if isinstance(old_compose, dict) else None, rendered.compose),
        secrets_to_create=missing_secrets(site_dir / SECRETS_DIR),
    )
