"""Escaping for each format a value lands in: YAML (with Compose interpolation), Caddyfile, CSS.

HTML is escaped by Jinja2's autoescape. Each function either returns text that
reads back as exactly the value, or raises RenderError: never a best effort.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from kitctl.errors import KitError

_CADDY_TOKEN = re.compile(r"^[A-Za-z0-9.:\[\]/_-]+$")
_COLOUR = re.compile(r"^#[0-9A-F]{6}$")
_CSS_SAFE = re.compile(r"[A-Za-z0-9 _.,-]")


class RenderError(KitError):
    """A value could not be rendered safely (a bug or an unvalidated input)."""


def compose_escape(value: Any) -> Any:
    """`value` with every `$` doubled, so Compose interpolation yields it literally."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [compose_escape(v) for v in value]
    if isinstance(value, dict):
        return {compose_escape(k): compose_escape(v) for k, v in value.items()}
    return value


def compose_unescape(value: Any) -> Any:
    """What Compose makes of a rendered value: `$$` back to `$` (for the deploy engine)."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [compose_unescape(v) for v in value]
    if isinstance(value, dict):
        return {compose_unescape(k): compose_unescape(v) for k, v in value.items()}
    return value


def yaml_inline(value: Any) -> str:
    """One YAML node on one line: strings double-quoted, collections in flow style."""
    import yaml

    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        text = yaml.safe_dump(value, default_flow_style=True, width=2**31)
    elif isinstance(value, str):
        text = yaml.safe_dump(value, default_style='"', allow_unicode=True, width=2**31)
    elif isinstance(value, (list, dict)):
        text = yaml.dump(
            value, Dumper=_quoted_dumper(), default_flow_style=True, allow_unicode=True, width=2**31, sort_keys=False
        )
    else:
        raise RenderError(f"cannot render a {type(value).__name__} into YAML")
    text = text.removesuffix("\n").removesuffix("\n...")
    if "\n" in text:
        raise RenderError("a YAML value did not fit on one line")
    return text


def compose_value(value: Any) -> str:
    """Jinja2 filter `v`: a value for compose.yaml, escaped for YAML and for interpolation."""
    return yaml_inline(compose_escape(value))


def caddy_token(value: Any) -> str:
    """Jinja2 filter `caddy`: a bare Caddyfile token; anything else is refused."""
    text = str(value)
    if not _CADDY_TOKEN.match(text):
        raise RenderError(f"refusing to put {text!r} into the Caddyfile")
    return text


def css_colour(value: Any) -> str:
    """Jinja2 filter `css_colour`: only #RRGGBB (upper case) passes."""
    text = str(value)
    if not _COLOUR.match(text):
        raise RenderError(f"refusing to put {text!r} into CSS as a colour")
    return text


def css_string(value: Any) -> str:
    """Jinja2 filter `css_string`: a double-quoted CSS string; every other character hex-escaped."""
    out = ['"']
    for ch in str(value):
        out.append(ch if _CSS_SAFE.match(ch) else f"\\{ord(ch):06X}")
    out.append('"')
    return "".join(out)


def css_string_decode(text: str) -> str:
    """Inverse of `css_string` (tests read the theme back with it)."""
    if not (text.startswith('"') and text.endswith('"')):
        raise ValueError("not a CSS string")
    return re.sub(r"\\([0-9A-F]{6})", lambda m: chr(int(m.group(1), 16)), text[1:-1])


@functools.cache
def _quoted_dumper():
    """A SafeDumper that double-quotes every string (built on first use: yaml is imported lazily)."""
    import yaml

    class QuotedDumper(yaml.SafeDumper):
        """Every string double-quoted, so none is read as a number, bool, anchor or tag."""

    def str_representer(dumper: yaml.SafeDumper, data: str):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')

    QuotedDumper.add_representer(str, str_representer)
    return QuotedDumper
