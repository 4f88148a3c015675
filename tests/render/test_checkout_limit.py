"""The storefront's checkouts per buyer address a minute as a render input (issue 16): a load test from one address,
or a shop whose buyers share a carrier's NAT, raises it through `kitctl up/render --checkouts-per-minute N`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from kitctl.render import render_site


def _storefront_env(site: Path) -> dict[str, str]:
    return yaml.safe_load((site / "compose.yaml").read_text())["services"]["storefront"]["environment"]


def test_the_limit_is_recorded_reaches_the_storefront_and_the_default_leaves_the_compose_as_it_was(flags) -> None:
    site = render_site(flags).site_dir
    assert "KIT_CHECKOUTS_PER_MINUTE" not in _storefront_env(site)  # an existing site's storefront hash is unchanged
    before = json.loads((site / "kitctl.lock").read_text())["services"]["storefront"]
    site = render_site({**flags, "checkouts_per_minute": 5000}).site_dir
    assert _storefront_env(site)["KIT_CHECKOUTS_PER_MINUTE"] == "5000"
    lock = json.loads((site / "kitctl.lock").read_text())
    assert lock["inputs"]["checkouts_per_minute"] == 5000 and lock["services"]["storefront"] != before
    site = render_site(flags).site_dir  # the next render keeps what the site recorded
    assert _storefront_env(site)["KIT_CHECKOUTS_PER_MINUTE"] == "5000"
    site = render_site({**flags, "reset": ["checkouts-per-minute"]}).site_dir
    assert "KIT_CHECKOUTS_PER_MINUTE" not in _storefront_env(site)
