"""An allow-list sanitizer for SVG logos: what comes out can reference nothing outside itself.

Pattern-matching a document for what is dangerous misses spellings (CSS
escapes such as `u\\72l(`, `@\\69mport`, presentation attributes such as
`fill="url(https://…)"`, `image-set(`). Instead the logo is parsed (expat,
with DTDs, entities and processing instructions refused, so nothing expands
or is fetched while parsing) and written out anew from what is explicitly
allowed: SVG elements that draw, attributes that style or place them, and
values that pass a strict check. Unknown elements (editor metadata) and
attributes are dropped; anything active or external is refused with one line,
so the licensee learns why the logo changed rather than finding it blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from kitcore.errors import InvalidInput

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

ELEMENTS = frozenset({
    "svg", "g", "defs", "symbol", "use", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
    "text", "tspan", "title", "desc", "linearGradient", "radialGradient", "stop", "clipPath", "mask", "pattern",
    "image", "style", "filter", "feGaussianBlur", "feOffset", "feBlend", "feFlood", "feComposite", "feMerge",
    "feMergeNode", "feColorMatrix", "feDropShadow",
})
ACTIVE = frozenset({"script", "foreignObject", "iframe", "embed", "object", "handler", "listener", "set", "animate",
                    "animateMotion", "animateTransform", "discard", "feImage", "audio", "video", "canvas"})
TEXT_ELEMENTS = frozenset({"text", "tspan", "title", "desc", "style"})
ATTRIBUTES = frozenset("""
id class x y x1 y1 x2 y2 cx cy r rx ry fx fy fr width height d points transform viewBox preserveAspectRatio
fill fill-opacity fill-rule stroke stroke-width stroke-linecap stroke-linejoin stroke-miterlimit stroke-dasharray
stroke-dashoffset stroke-opacity opacity style offset stop-color stop-opacity gradientUnits gradientTransform
spreadMethod clip-path clip-rule mask maskUnits maskContentUnits clipPathUnits patternUnits patternContentUnits
patternTransform font-family font-size font-weight font-style text-anchor dominant-baseline letter-spacing dx dy
textLength lengthAdjust href version display visibility color filter filterUnits stdDeviation in in2 result mode
operator k1 k2 k3 k4 values type flood-color flood-opacity role aria-label shape-rendering vector-effect overflow
""".split())
# CSS properties a style may set (the presentation attributes, as properties)
PROPERTIES = frozenset(a for a in ATTRIBUTES if "-" in a or a in {
    "fill", "stroke", "opacity", "mask", "filter", "color", "display", "visibility", "overflow"})
FUNCTIONS = frozenset({"url", "rgb", "rgba", "hsl", "hsla", "matrix", "translate", "scale", "rotate", "skewx", "skewy"})

_FUNCTION = re.compile(r"([A-Za-z_-][\w-]*)\s*\(")
_LOCAL_URL = re.compile(r"""^url\(\s*(['"]?)#[A-Za-z_][\w.:-]*\1\s*\)\Z""")
_URL_CALL = re.compile(r"url\s*\([^)]*\)", re.IGNORECASE)
_SAFE_DATA_URI = re.compile(r"^data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]*\Z")
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_SELECTOR = re.compile(r"^[\w\s.#,>+~*:()-]+\Z")


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str]
    children: list["_Node | str"] = field(default_factory=list)


def sanitize_svg(data: bytes, name: str) -> bytes:
    """The logo rewritten from allowed parts; InvalidInput (one line) when it is active, external or not SVG."""
    from xml.parsers import expat

    builder = _Builder(name)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = builder.refuse_doctype
    parser.EntityDeclHandler = builder.refuse_entity
    parser.ExternalEntityRefHandler = builder.refuse_external
    parser.ProcessingInstructionHandler = builder.refuse_pi
    parser.StartElementHandler = builder.start
    parser.CharacterDataHandler = builder.text
    parser.EndElementHandler = builder.end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise InvalidInput(f"logo {name} is not well-formed SVG: {expat.errors.messages[exc.code]}") from None
    if builder.root is None:
        raise InvalidInput(f"logo {name} is not an SVG image")
    return _serialise(builder.root, top=True).encode("utf-8")


class _Builder:
    """expat callbacks that keep allowed parts and refuse active or external ones."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.root: _Node | None = None
        self.stack: list[_Node | None] = []  # None: inside a dropped element

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
        if self.root is None and not self.stack and (ns != SVG_NS or local != "svg"):
            self._refuse("root element is not <svg> in the SVG namespace")
        if local in ACTIVE:
            self._refuse(f"contains a <{local}> element")
        parent_dropped = bool(self.stack) and self.stack[-1] is None
        if parent_dropped or ns != SVG_NS or local not in ELEMENTS:
            for key, value in attrs.items():  # checked even where dropped: a refusal explains more than silence
                self._attribute(local, key, value)
            self.stack.append(None)
            return
        node = _Node(local, {})
        for key, value in attrs.items():
            kept = self._attribute(local, key, value)
            if kept is not None:
                node.attrs[kept[0]] = kept[1]
        if self.root is None:
            self.root = node
        else:
            self.stack[-1].children.append(node)  # type: ignore[union-attr]
        self.stack.append(node)

    def _attribute(self, element: str, key: str, value: str) -> tuple[str, str] | None:
        ns, _, local = key.rpartition(" ")
        if local.lower().startswith("on"):
            self._refuse(f"has an event handler attribute {local!r}")
        if local == "href" and ns in ("", XLINK_NS):
            if value.startswith("#") or (element == "image" and _SAFE_DATA_URI.match(value)):
                return "href", value
            self._refuse("references an external resource (only #fragment links are accepted)")
        if ns or local not in ATTRIBUTES:
            return None
        if local == "style":
            return "style", self._style(value)
        self._value(value)
        return local, value

    def _value(self, value: str, where: str = "") -> None:
        """A value may call only colour, transform and local url(#id) functions, and escape nothing."""
        if "\\" in value:
            self._refuse(f"{where}uses CSS escapes (\\), which are not accepted")
        for fn in _FUNCTION.findall(value):
            if fn.lower() not in FUNCTIONS:
                self._refuse(f"{where}uses the CSS function {fn}(), which is not accepted")
        for call in _URL_CALL.findall(value):
            if not _LOCAL_URL.match(call):
                self._refuse(f"{where}references an external resource (only url(#id) is accepted)")

    def _style(self, css: str) -> str:
        """Declarations of allowed properties with checked values; others dropped."""
        css = _COMMENT.sub("", css)
        if "@" in css or "\\" in css:
            self._refuse("style uses @-rules or CSS escapes, which are not accepted")
        kept = []
        for declaration in css.split(";"):
            prop, sep, value = declaration.partition(":")
            prop, value = prop.strip().lower(), value.strip()
            self._value(value, "style ")  # every declaration, kept or not: a refusal says more than silence
            if sep and prop in PROPERTIES:
                kept.append(f"{prop}:{value}")
        return ";".join(kept)

    def _stylesheet(self, css: str) -> str:
        css = _COMMENT.sub("", css)
        if "@" in css or "\\" in css or "<" in css:
            self._refuse("style uses @-rules or CSS escapes, which are not accepted")
        rules = []
        for block in css.split("}"):
            selector, sep, body = block.partition("{")
            if not sep:
                if block.strip():
                    self._refuse("style is not plain CSS rules")
                continue
            if not _SELECTOR.match(selector.strip()):
                self._refuse("style has a selector that is not accepted")
            rules.append(f"{selector.strip()}{{{self._style(body)}}}")
        return "\n".join(rules)

    def text(self, data: str) -> None:
        node = self.stack[-1] if self.stack else None
        if node is None or node.tag not in TEXT_ELEMENTS:
            return
        node.children.append(self._stylesheet(data) if node.tag == "style" else data)

    def end(self, _tag: str) -> None:
        self.stack.pop()


def _serialise(node: _Node, top: bool = False) -> str:
    attrs = {"xmlns": SVG_NS, **node.attrs} if top else node.attrs
    head = node.tag + "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    if not node.children:
        return f"<{head}/>"
    inner = "".join(escape(c) if isinstance(c, str) else _serialise(c) for c in node.children)
    return f"<{head}>{inner}</{node.tag}>"
