"""Render a sub-site's directory (compose stack, proxy config, branding, secrets, lock).

Public API, its implementation imported on first call so `import kitctl.render`
stays cheap: `render_site(inputs)`, `plan_site(inputs)`, `compose_hash(service)`,
`load_compose(site_dir)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from kitctl.render.content_hashes import compose_hash

if TYPE_CHECKING:
    from kitctl.render.api import RenderResult
    from kitctl.render.changes import Plan
    from kitctl.site.inputs import SiteInputs

__all__ = ["compose_hash", "load_compose", "plan_site", "render_site"]


def render_site(inputs: SiteInputs | Mapping[str, Any], now: float | None = None) -> RenderResult:
    """Validate, verify the licence, render, and write the site dir atomically (see kitctl.render.api)."""
    from kitctl.render.api import render_site as impl

    return impl(inputs, now)


def plan_site(inputs: SiteInputs | Mapping[str, Any], now: float | None = None) -> Plan:
    """What `render_site` would change, computed without writing anything."""
    from kitctl.render.api import plan_site as impl

    return impl(inputs, now)


def load_compose(site_dir: Path | str) -> dict[str, Any]:
    """compose.yaml of a rendered site dir, parsed (values still `$$`-escaped, as compose_hash wants)."""
    from kitcore.sitedir import SiteDir
    from kitctl.render.yamlload import load_yaml

    return load_yaml(SiteDir(Path(site_dir)).compose.read_text(encoding="utf-8"))
