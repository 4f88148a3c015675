"""QR codes drawn here, as inline SVG: the buyer's pay link never goes to a third-party QR service."""

from __future__ import annotations

import segno
from markupsafe import Markup

MAX_CONTENT = 2048  # a pay link is far shorter; longer content would make an unscannable code


def qr_svg(content: str) -> Markup | None:
    """The QR code of `content` as an <svg> element (None when it is empty or too long to scan)."""
    if not content or len(content) > MAX_CONTENT:
        return None
    svg = segno.make(content, error="m").svg_inline(scale=5, border=2, title=None, svgclass="qr",
                                                   lineclass=None, omitsize=True)
    return Markup(svg)  # generated from the code's modules only; `content` is not in the markup
