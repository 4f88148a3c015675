"""Logos: sniffed by content, size-limited, SVG refused when active or external."""

from __future__ import annotations

import pytest

from kitcore.errors import InvalidInput
from kitctl.site.logo import MAX_LOGO_BYTES, check_logo, load_logo

from .conftest import PNG_1X1, SVG_OK

SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">{}</svg>'


def test_png_jpeg_svg_are_sniffed_by_content(tmp_path):
    assert check_logo(PNG_1X1).ext == "png"
    assert check_logo(b"\xff\xd8\xff\xe0" + b"\x00" * 20 + b"\xff\xd9").ext == "jpg"
    assert check_logo(SVG_OK).ext == "svg"
    disguised = tmp_path / "logo.svg"
    disguised.write_bytes(PNG_1X1)  # the name says SVG, the bytes say PNG
    assert load_logo(disguised).ext == "png"


def test_svg_with_safe_internal_references_passes():
    svg = SVG.format('<defs><linearGradient id="g"/></defs><rect fill="url(#g)" style="fill:url(#g)"/>'
                     '<use href="#g"/><image href="data:image/png;base64,iVBORw0KGgo="/>')
    assert check_logo(svg.encode()).ext == "svg"


@pytest.mark.parametrize(
    "body, why",
    [
        ("<script>alert(1)</script>", "<script>"),
        ('<rect onload="alert(1)"/>', "event handler"),
        ('<rect ONCLICK="x()"/>', "event handler"),
        ('<image href="https://evil.example/x.png"/>', "external resource"),
        ('<image xlink:href="http://evil.example/x.png"/>', "external resource"),
        ('<a href="javascript:alert(1)"><rect/></a>', "external resource"),
        ('<foreignObject><div xmlns="http://www.w3.org/1999/xhtml"/></foreignObject>', "foreignObject"),
        ("<style>@import 'https://evil.example/x.css';</style>", "style"),
        ('<style>rect { fill: url("https://evil.example/x") }</style>', "style"),
        ('<rect style="background: url(http://evil.example/x)"/>', "style"),
        ('<set attributeName="href" to="javascript:alert(1)"/>', "<set>"),
        ('<image href="data:text/html;base64,PHNjcmlwdD4="/>', "external resource"),
    ],
)
def test_active_or_external_svg_is_refused(body, why):
    with pytest.raises(InvalidInput) as err:
        check_logo(SVG.format(body).encode())
    assert why in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "data, why",
    [
        (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
         b'<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>', "DOCTYPE"),
        (b'<!DOCTYPE svg SYSTEM "file:///etc/passwd"><svg xmlns="http://www.w3.org/2000/svg"/>', "DOCTYPE"),
        (b'<?xml-stylesheet href="https://evil.example/x.css"?><svg xmlns="http://www.w3.org/2000/svg"/>',
         "processing instruction"),
        (b"<svg><rect/></svg>", "SVG namespace"),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/2000/svg"/>', "root element"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><rect>', "not well-formed"),
        (b"GIF89a\x01\x00", "not a PNG, JPEG or SVG"),
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\nshort", "malformed PNG"),
        (b"\xff\xd8\xff\xe0 truncated", "truncated JPEG"),
    ],
)
def test_bad_logos_are_refused(data, why):
    with pytest.raises(InvalidInput) as err:
        check_logo(data)
    assert why in str(err.value) and "\n" not in str(err.value)


def test_oversized_logo_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(PNG_1X1 + b"\x00" * (MAX_LOGO_BYTES + 10))
    with pytest.raises(InvalidInput, match="larger than 512 KiB"):
        load_logo(big)


def test_huge_png_dimensions_are_refused():
    header = bytearray(PNG_1X1)
    header[16:20] = (100_000).to_bytes(4, "big")
    with pytest.raises(InvalidInput, match="at most 4096x4096"):
        check_logo(bytes(header))


def test_missing_logo_file(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read logo"):
        load_logo(tmp_path / "nope.png")
