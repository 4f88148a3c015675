"""Where the stack's Jinja2 templates and the monitoring files are: inside the wheel, or the source tree."""

from __future__ import annotations

from pathlib import Path


def templates_dir() -> Path:
    """`kitctl/_templates` in an installed wheel; `templates/` beside the package in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_templates"
    if packaged.is_dir():
        return packaged
    return here.parent / "templates"


def monitoring_dir() -> Path:
    """The shipped alert rules and dashboards: `kitctl/_monitoring` in a wheel, `monitoring/` in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_monitoring"
    if packaged.is_dir():
        return packaged
    return here.parent / "monitoring"
