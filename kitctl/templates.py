"""Where the stack's Jinja2 templates and the monitoring files are: inside the wheel, or the source tree."""

from __future__ import annotations

from pathlib import Path


def _shipped(packaged: str, checkout: str) -> Path:
    """`kitctl/<packaged>` in an installed wheel; `<checkout>/` beside the package in a checkout."""
    here = Path(__file__).resolve().parent
    return here / packaged if (here / packaged).is_dir() else here.parent / checkout


def templates_dir() -> Path:
    """The compose templates: `kitctl/_templates` in a wheel, `templates/` in a checkout."""
    return _shipped("_templates", "templates")


def monitoring_dir() -> Path:
    """The shipped alert rules and dashboards: `kitctl/_monitoring` in a wheel, `monitoring/` in a checkout."""
    return _shipped("_monitoring", "monitoring")
