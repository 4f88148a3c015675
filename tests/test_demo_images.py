"""What `make demo` builds and pushes: the site's images (and HQ's, built for its container, never pushed)."""

from __future__ import annotations

from pathlib import Path

from demo.stack import Demo, demo_images


def test_the_demo_builds_what_it_runs_and_pushes_only_what_the_site_pulls(tmp_path: Path):
    built, pushed = demo_images(Demo(root=tmp_path))
    assert built == ["storefront", "agent", "hq", "db", "proxy"]
    assert pushed == ["storefront", "agent", "db", "proxy"]


def test_a_monitored_demo_also_builds_and_pushes_prometheus_and_alertmanager(tmp_path: Path):
    built, pushed = demo_images(Demo(root=tmp_path, monitoring=True))
    assert built == ["storefront", "agent", "hq", "db", "proxy", "prometheus", "alertmanager"]
    assert pushed == ["storefront", "agent", "db", "proxy", "prometheus", "alertmanager"]
