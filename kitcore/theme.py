"""A flagship site's own shop theme (licence feature `custom-theme`): templates and CSS, checked before use.

A theme directory holds `theme.css` and/or `templates/<name>.html` overriding the
shop's pages (never the admin's). It is untrusted input: render refuses it with one
line naming the file and line when it holds anything beyond markup and template
expressions over the page's data — scripts, event handlers, `javascript:` or
external URLs, template code reaching Python internals (`__class__`, `_private`),
`include`/`import`/`extends` of anything but the shop's own templates, CSS
imports or external `url()`. What passes is then rendered by the storefront in
a sandboxed, autoescaping Jinja environment under the same Content-Security-Policy,
so even a check missed here runs no script and reaches no internals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kitcore.errors import InvalidInput

FEATURE = "custom-theme"
TEMPLATES = ("base.html", "home.html", "product.html", "order.html", "lookup.html", "error.html", "maintenance.html")
CSS_FILE = "theme.css"
MAX_FILE = 64 * 1024
FILE_NAME = re.compile(r"^[a-z_]{1,32}\.html\Z")

# markup a theme may not carry (case-insensitive), each with the reason shown
MARKUP = (
    (re.compile(r"<\s*script", re.I), "<script> is not allowed (a theme runs no scripts)"),
    (re.compile(r"<\s*(iframe|object|embed|frame|frameset|applet|base|meta|link)\b", re.I), "<{0}> is not allowed in a theme"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event handler attributes (on...=) are not allowed (a theme runs no scripts)"),
    (re.compile(r"(javascript|vbscript|data)\s*:", re.I), "{0}: URLs are not allowed"),
    (re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""", re.I), "external URLs are not allowed (everything comes from this site)"),
    (re.compile(r"<\s*style", re.I), "<style> is not allowed: put CSS in theme.css"),
    (re.compile(r"\sstyle\s*=", re.I), "style attributes are not allowed: put CSS in theme.css"),
)
CSS = (
    (re.compile(r"@import", re.I), "@import is not allowed"),
    (re.compile(r"url\(\s*['\"]?\s*(?!/branding/|/static/)", re.I), "url() may only name /branding/ or /static/ files"),
    (re.compile(r"(expression\s*\(|javascript:|behavior\s*:|-moz-binding)", re.I), "{0} is not allowed"),
    (re.compile(r"</", re.I), "markup is not allowed in CSS"),
    (re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""", re.I), "external URLs are not allowed (everything comes from this site)"),
)
TEMPLATE_CODE = (
    (re.compile(r"(\.|\[\s*['\"]|\battr\(\s*['\"])_"), "names starting with _ are not allowed (template code reaches no internals)"),
    (re.compile(r"\{%-?\s*(include|import|from|extends)\s+(?!['\"](" + "|".join(re.escape(t) for t in TEMPLATES + ("_field.html", "_plugin_lines.html")) + r")['\"])", re.I),
     "{0} may only name the shop's own templates"),
    (re.compile(r"\{%-?\s*(macro|call|filter|raw)\b", re.I), "{{% {0} %}} is not allowed in a theme"),
    (re.compile(r"\|\s*safe\b|\bMarkup\b|\|\s*attr\b", re.I), "|safe, |attr and Markup are not allowed (everything stays escaped)"),
    (re.compile(r"\b(request|self|namespace|cycler|joiner|lipsum|range)\b"), "{0} is not available to a theme (only the page's data)"),
)


@dataclass
class Theme:
    """A checked theme: template sources by name, and its CSS."""

    templates: dict[str, str] = field(default_factory=dict)
    css: str = ""


def load_theme(directory: Path) -> Theme:
    """Read and check a theme directory; InvalidInput (one line: file, line, why) on the first problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInput(f"theme: {directory} is not a directory")
    theme = Theme()
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise InvalidInput(f"theme: {relative}: symbolic links are not allowed")
        if path.is_dir():
            if relative != "templates":
                raise InvalidInput(f"theme: {relative}/: only templates/ and theme.css belong in a theme")
            continue
        if relative == CSS_FILE:
            theme.css = check_css(_text(path, relative), relative)
        elif relative.startswith("templates/") and FILE_NAME.match(path.name) and path.name in TEMPLATES:
            theme.templates[path.name] = check_template(_text(path, relative), relative)
        else:
            raise InvalidInput(f"theme: {relative}: not a theme file (theme.css, or templates/ one of {', '.join(TEMPLATES)})")
    if not theme.templates and not theme.css:
        raise InvalidInput(f"theme: {directory} has neither theme.css nor templates/")
    return theme


def _text(path: Path, relative: str) -> str:
    data = path.read_bytes()
    if len(data) > MAX_FILE:
        raise InvalidInput(f"theme: {relative}: larger than {MAX_FILE // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"theme: {relative}: not UTF-8 text") from None
    if "\x00" in text:
        raise InvalidInput(f"theme: {relative}: not text")
    return text


def _first(text: str, rules: tuple[tuple[re.Pattern[str], str], ...], relative: str) -> None:
    for pattern, why in rules:
        found = pattern.search(text)
        if found:
            line = text.count("\n", 0, found.start()) + 1
            word = (found.group(1) if found.groups() else found.group(0)).strip()
            raise InvalidInput(f"theme: {relative} line {line}: {why.format(word)}")


def check_template(text: str, relative: str) -> str:
    """Markup and template code a theme may use; the template must also compile in the sandbox."""
    _first(text, MARKUP, relative)
    _first(_code_only(text), TEMPLATE_CODE, relative)
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(autoescape=True).parse(text)
    except TemplateSyntaxError as exc:
        first = (exc.message or "not a template").splitlines()[0]
        raise InvalidInput(f"theme: {relative} line {exc.lineno}: {first}") from None
    return text


CODE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _code_only(text: str) -> str:
    """The template's tags and expressions where they stand; the markup around them blanked (lines kept)."""
    kept = [" " if ch != "\n" else ch for ch in text]
    for found in CODE.finditer(text):
        kept[found.start():found.end()] = text[found.start():found.end()]
    return "".join(kept)


def check_css(text: str, relative: str = CSS_FILE) -> str:
    _first(text, CSS, relative)
    return text
