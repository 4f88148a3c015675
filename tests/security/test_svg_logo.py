"""The SVG logo is rebuilt from an allow-list: no external reference survives, however it is spelled.

The old filter matched patterns and missed CSS escapes (`u\\72l(`,
`@\\69mport`), presentation attributes (`fill="url(https://…)"`) and
`image-set(`. Each of those is refused now, and whatever passes is written
out anew from allowed elements, attributes and values only.
"""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitcore.errors import InvalidInput
from kitctl.site.logo import check_logo

SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 64 64">{}</svg>'


@pytest.mark.parametrize("body", [
    r'<style>rect { fill: u\72l(https://evil.example/x) }</style>',
    r"<style>@\69mport 'https://evil.example/x.css';</style>",
    r'<rect style="fill: u\72l(https://evil.example/x)"/>',
    '<rect fill="url(https://evil.example/x)"/>',
    '<rect mask="url(\'https://evil.example/m.svg#m\')"/>',
    '<rect filter="url(//evil.example/f.svg#f)"/>',
    '<rect style="fill: image-set(\'https://evil.example/a.png\' 1x)"/>',
    '<style>rect { background: image-set("https://evil.example/a.png" 1x) }</style>',
    '<rect style="fill: URL( https://evil.example/x )"/>',
    '<style>rect { fill: u/**/rl(https://evil.example/x) }</style>',
    '<circle clip-path="url(data:image/svg+xml;base64,PHN2Zy8+)"/>',
    '<feImage href="https://evil.example/x.png"/>',
    '<use xlink:href="https://evil.example/sprite.svg#logo"/>',
])
def test_external_references_in_any_spelling_are_refused(body):
    with pytest.raises(InvalidInput) as caught:
        check_logo(SVG.format(body).encode())
    assert "refused" in str(caught.value) and "\n" not in str(caught.value)


def test_what_passes_is_rewritten_from_the_allow_list():
    body = ('<metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>'
            '<sodipodi:namedview xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"/>'
            '<defs><linearGradient id="g"><stop offset="0" stop-color="#c00"/></linearGradient></defs>'
            '<style>.a { fill: url(#g); cursor: pointer }</style>'
            '<rect class="a" width="64" height="64" fill="url(#g)" data-tracking="x" unknown="1"'
            ' style="fill:url(#g); position: fixed"/><text x="4" y="40">星辰 &amp; co</text>')
    out = check_logo(SVG.format(body).encode()).data.decode()
    for gone in ("metadata", "namedview", "data-tracking", "unknown=", "cursor", "position"):
        assert gone not in out
    for kept in ('fill="url(#g)"', "stop-color", "星辰 &amp; co", ".a{fill:url(#g)}"):
        assert kept in out
    assert check_logo(out.encode()).data.decode() == out  # a second pass changes nothing


VOCABULARY = {
    "elements": ["rect", "g", "path", "style", "text", "image", "use", "metadata", "linearGradient", "a"],
    "attributes": ["fill", "stroke", "style", "mask", "filter", "href", "{http://www.w3.org/1999/xlink}href",
                   "clip-path", "class", "transform", "font-family", "cursor"],
    "values": ["#c00", "url(#g)", "url(https://e.example/x)", r"u\72l(//e.example)", "image-set('a.png' 1x)",
               "fill:url(#g)", "fill: url( 'https://e.example' )", "@import 'x'", "rotate(45)", "#g",
               "https://e.example/x.png", "data:image/png;base64,AAAA", "javascript:alert(1)",
               "expression(alert(1))", "translate(1,2) scale(2)", "a{fill:red}", "rgb(1,2,3)", "var(--x)"],
}


@st.composite
def svg_documents(draw) -> str:  # type: ignore[no-untyped-def]
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        tag = draw(st.sampled_from(VOCABULARY["elements"]))
        attrs = draw(st.dictionaries(st.sampled_from(VOCABULARY["attributes"]),
                                     st.sampled_from(VOCABULARY["values"]), max_size=3))
        rendered = "".join(
            f' {"xlink:href" if k.startswith("{") else k}="{v.replace(chr(34), "&quot;")}"' for k, v in attrs.items())
        text = draw(st.sampled_from(["", "a{fill:url(https://e.example)}", ".x{fill:#c00}", "hi"]))
        parts.append(f"<{tag}{rendered}>{text}</{tag}>")
    return SVG.format("".join(parts))


@settings(max_examples=300, deadline=None)
@given(document=svg_documents())
def test_nothing_external_survives_any_mix_of_parts(document):
    try:
        out = check_logo(document.encode()).data
    except InvalidInput as exc:
        assert "\n" not in str(exc)
        return
    root = ElementTree.fromstring(out)
    for element in root.iter():
        css = element.tag.endswith("}style")
        values = list(element.attrib.values()) + ([element.text] if css and element.text else [])
        stylesheet = (element.text or "") if css else ""
        assert "@" not in stylesheet + element.attrib.get("style", "")  # no @import, @font-face …
        for value in values:
            assert "\\" not in value
            for call in re.findall(r"url\s*\([^)]*\)", value, re.IGNORECASE):
                assert re.fullmatch(r"url\(\s*['\"]?#[\w.:-]+['\"]?\s*\)", call), call
            assert not re.search(r"(image-set|expression|image|element|var)\s*\(", value, re.IGNORECASE)
        for key, value in element.attrib.items():
            if key.endswith("href"):
                assert value.startswith("#") or value.startswith("data:image/png;base64,")
