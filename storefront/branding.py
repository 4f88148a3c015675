"""/branding/ when the storefront runs without the proxy: logo from a directory, theme.css from the colours
and, while the licence grants custom-theme, the site's own theme CSS after them (as `kitctl render` writes it).

In the stack the proxy serves /branding/ and these routes are never reached.
"""

from __future__ import annotations

import mimetypes
import re
from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from kitcore.theme import FEATURE as THEME_FEATURE
from storefront.siteconfig import SiteConfig
from storefront.web import HTTPProblem, shop_of

if TYPE_CHECKING:
    from storefront.context import Shop

router = APIRouter()
ASSET = re.compile(r"^(logo\.(png|jpg|jpeg|svg|webp|gif)|theme\.css)\Z")


def theme_css(site: SiteConfig) -> str:
    """CSS variables the storefront's stylesheet uses (colours were validated as hex)."""
    c = site.colours
    return (":root{"
            f"--kit-primary:{c.primary};--kit-accent:{c.accent};--kit-bg:{c.background};--kit-text:{c.text};"
            "}\n")


def _custom_css(shop: Shop) -> str:
    """The custom theme's CSS while licensed (its templates follow the same rule: `storefront.web.templates_for`)."""
    if not shop.theme_css or THEME_FEATURE not in shop.licence().features:
        return ""
    return "\n/* the site's custom theme */\n" + shop.theme_css


@router.get("/branding/{name}", name="branding")
def branding(request: Request, name: str) -> Response:
    shop = shop_of(request)
    if not ASSET.match(name):
        raise HTTPProblem(404, "err.not_found")
    directory = shop.settings.branding_dir
    if directory is not None and (directory / name).is_file():
        media = "image/svg+xml" if name.endswith(".svg") else (mimetypes.guess_type(name)[0] or "application/octet-stream")
        return FileResponse(directory / name, media_type=media, headers={"Cache-Control": "public, max-age=300"})
    if name == "theme.css":
        css = theme_css(shop.site) + _custom_css(shop)
        return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=300"})
    raise HTTPProblem(404, "err.not_found")
