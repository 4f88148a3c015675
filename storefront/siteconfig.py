"""The site's branding and identity from `site.json` (written by `kitctl render`).

The model, its validation and its defaults are the kernel's (`kitcore.site`),
shared with render; here the storefront reads it once at start.
"""

from __future__ import annotations

from pathlib import Path

from kitcore.site import Colours, SiteConfig, load_site_json

__all__ = ["Colours", "SiteConfig", "load_site_config"]


def load_site_config(path: Path | None) -> SiteConfig:
    """Read and validate site.json; without one, development defaults."""
    return load_site_json(path)
