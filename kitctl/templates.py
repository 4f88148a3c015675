"""Where the stack's Jinja2 templates are: inside the wheel, or the source tree."""

from __future__ import annotations

from pathlib import Path


def templates_dir() -> Path:
    """`kitctl/_templates` in an installed wheel; `templates/` beside the package in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_templates"
    if packaged.is_dir():
        return packaged
    return here.parent / "templates"
