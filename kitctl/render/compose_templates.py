"""The Jinja2 environment over templates/compose (in a checkout or inside the wheel)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any


def templates_dir() -> Path:
    """`templates/compose` next to the package in a checkout, `kitctl/_templates/compose` in a wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_templates" / "compose", package.parent / "templates" / "compose"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("kitctl's compose templates are missing from this installation")


@functools.cache
def environment() -> Any:
    """StrictUndefined everywhere; autoescape only for HTML; one filter per target format."""
    import jinja2

    from kitctl.render import escape

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
        keep_trailing_newline=True,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["v"] = escape.compose_value
    env.filters["caddy"] = escape.caddy_token
    env.filters["css_colour"] = escape.css_colour
    env.filters["css_string"] = escape.css_string
    return env


def render_template(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
