"""Escaping for each format a value lands in: YAML (with Compose interpolation), Caddyfile, CSS.

HTML is escaped by Jinja2's autoescape. Each function either returns text that
reads back as exactly the value, or raises RenderError: never a best effort.
"""

from __future__ import annotations

import re
from typing import Any

from kitcore.errors import KitError

_CADDY_TOKEN = re.compile(r"^[A-Za-z0-9.:\[\]/_-]+\Z")
_COLOUR = re.compile(r"^#[0-9A-F]{6}\Z")
# No space: CSS reads one whitespace after a hex escape as the escape's end and drops it ("星 辰" became "星辰").
_CSS_SAFE = re.compile(r"[A-Za-z0-9_.,-]")


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
    """One YAML node on one line: strings double-quoted, collections in flow style.

    A small emitter of our own rather than PyYAML's: the output must be
    byte-identical on every machine (no dependence on PyYAML's version or on
    libyaml), and this sits in the hot path of every render.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return yaml_quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_quote(str(k))}: {yaml_inline(v)}" for k, v in value.items()) + "}"
    raise RenderError(f"cannot render a {type(value).__name__} into YAML")


_YAML_LINE_BREAKS = (0x2028, 0x2029)  # YAML reads these as line breaks even inside quotes
_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\\0"}


def yaml_quote(text: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly `text`, on one line."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _YAML_ESCAPES:
            out.append(_YAML_ESCAPES[ch])
        elif 0x20 <= code <= 0x7E or (0xA0 <= code <= 0xD7FF and code not in _YAML_LINE_BREAKS) or (
            0xE000 <= code <= 0xFFFD and code != 0xFEFF
        ):
            out.append(ch)
        elif 0xD800 <= code <= 0xDFFF:
            raise RenderError("refusing to render an unpaired surrogate into YAML")
        elif code <= 0xFF:
            out.append(f"\\x{code:02X}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    out.append('"')
    return "".join(out)


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

