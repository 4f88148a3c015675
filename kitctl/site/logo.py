"""The site logo: sniffed by content, size-limited, SVG checked for active content.

An SVG is a document that browsers execute: scripts, event handlers,
`<foreignObject>` and references to other resources are refused. It is parsed
with expat with DTDs and entities refused, so no entity expansion or external
fetch can happen while checking it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kitcore.errors import InvalidInput

MAX_LOGO_BYTES = 512 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
_FORBIDDEN_ELEMENTS = frozenset({"script", "foreignObject", "iframe", "embed", "object", "handler", "listener", "set", "animate"})
_URL_IN_CSS = re.compile(r"url\s*\(\s*['\"]?\s*(?!#)", re.IGNORECASE)
_SAFE_DATA_URI = re.compile(r"^data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]*$")


@dataclass(frozen=True)
class Logo:
    data: bytes
    ext: str  # "png" | "jpg" | "svg"

    @property
    def filename(self) -> str:
        return f"logo.{self.ext}"


def load_logo(path: Path) -> Logo:
    """The logo at `path`, or InvalidInput with one line saying why it is refused."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_LOGO_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read logo {path}: {exc.strerror or exc}") from None
    return check_logo(data, str(path))


def check_logo(data: bytes, name: str = "data") -> Logo:
    """Classify `data` by its bytes (never by file name) and validate it."""
    if len(data) > MAX_LOGO_BYTES:
        raise InvalidInput(f"logo {name} is larger than {MAX_LOGO_BYTES // 1024} KiB")
    if not data:
        raise InvalidInput(f"logo {name} is empty")
    if data.startswith(_PNG_MAGIC):
        _check_png(data, name)
        return Logo(data, "png")
    if data.startswith(_JPEG_MAGIC):
        if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            raise InvalidInput(f"logo {name} is a truncated JPEG")
        return Logo(data, "jpg")
    if _looks_like_xml(data):
        _check_svg(data, name)
        return Logo(data, "svg")
    raise InvalidInput(f"logo {name} is not a PNG, JPEG or SVG image")


def _check_png(data: bytes, name: str) -> None:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InvalidInput(f"logo {name} is a malformed PNG (no IHDR chunk)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not (1 <= width <= 4096 and 1 <= height <= 4096):
        raise InvalidInput(f"logo {name} is {width}x{height} pixels; at most 4096x4096 is accepted")


def _looks_like_xml(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<?xml") or head.startswith(b"<svg") or head.startswith(b"<!--") or head.startswith(b"<!DOCTYPE")


def _check_svg(data: bytes, name: str) -> None:
    from xml.parsers import expat

    checker = _SvgChecker(name)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True  # CSS arrives in one piece, so `url(` cannot be split
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = checker.refuse_doctype
    parser.EntityDeclHandler = checker.refuse_entity
    parser.ExternalEntityRefHandler = checker.refuse_external
    parser.ProcessingInstructionHandler = checker.refuse_pi
    parser.StartElementHandler = checker.start
    parser.CharacterDataHandler = checker.text
    parser.EndElementHandler = checker.end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise InvalidInput(f"logo {name} is not well-formed SVG: {expat.errors.messages[exc.code]}") from None
    if not checker.saw_root:
        raise InvalidInput(f"logo {name} is not an SVG image")


class _SvgChecker:
    """expat callbacks that raise InvalidInput on anything active or external."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.saw_root = False
        self.in_style = 0

    def _refuse(self, why: str) -> None:
        raise InvalidInput(f"logo {self.name} refused: SVG {why}")

    def refuse_doctype(self, *_: object) -> None:
        self._refuse("has a DOCTYPE (DTDs and entities are not accepted)")

    def refuse_entity(self, *_: object) -> None:
        self._refuse("declares an entity")

    def refuse_external(self, *_: object) -> int:
        self._refuse("references an external entity")
        return 0

    def refuse_pi(self, target: str, _data: str) -> None:
        self._refuse(f"has a processing instruction <?{target}")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        ns, _, local = tag.rpartition(" ")
        if not self.saw_root:
            if ns != _SVG_NS or local != "svg":
                self._refuse("root element is not <svg> in the SVG namespace")
            self.saw_root = True
        if local in _FORBIDDEN_ELEMENTS:
            self._refuse(f"contains a <{local}> element")
        if local == "style":
            self.in_style += 1
        for key, value in attrs.items():
            self._check_attr(key.rpartition(" ")[2], value)

    def _check_attr(self, attr: str, value: str) -> None:
        if attr.lower().startswith("on"):
            self._refuse(f"has an event handler attribute {attr!r}")
        if attr == "href" and not (value.startswith("#") or _SAFE_DATA_URI.match(value)):
            self._refuse("references an external resource (only #fragment links are accepted)")
        if attr == "style":
            self._check_css(value)

    def text(self, data: str) -> None:
        if self.in_style:
            self._check_css(data)

    def end(self, tag: str) -> None:
        if tag.rpartition(" ")[2] == "style":
            self.in_style -= 1

    def _check_css(self, css: str) -> None:
        if "@import" in css.lower() or _URL_IN_CSS.search(css):
            self._refuse("style references an external resource")
