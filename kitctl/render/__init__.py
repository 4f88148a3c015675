"""Render a sub-site's directory (compose stack, proxy config, branding, secrets, lock).

Public API, imported lazily so `import kitctl.render` stays cheap:
`render_site(inputs)`, `plan_site(inputs)`, `compose_hash(service)`,
`load_compose(site_dir)`.
"""

from __future__ import annotations

from typing import Any

from kitctl.render.content_hashes import compose_hash

__all__ = ["compose_hash", "load_compose", "plan_site", "render_site"]


def render_site(*args: Any, **kwargs: Any):
    from kitctl.render.api import render_site as impl

    return impl(*args, **kwargs)


def plan_site(*args: Any, **kwargs: Any):
    from kitctl.render.api import plan_site as impl

    return impl(*args, **kwargs)


def load_compose(site_dir) -> dict[str, Any]:
    """compose.yaml of a rendered site dir, parsed (values still `$$`-escaped, as compose_hash wants)."""
    from pathlib import Path

    from kitctl.render.yamlload import load_yaml

    return load_yaml((Path(site_dir) / "compose.yaml").read_text(encoding="utf-8"))
