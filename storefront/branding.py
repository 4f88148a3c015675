"""/branding/ when the storefront runs without the proxy: logo from a directory, theme.css from the colours.

In the stack the proxy serves /branding/ and these routes are never reached.
"""

from __future__ import annotations

import mimetypes
import re

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from storefront.siteconfig import SiteConfig
from storefront.web import HTTPProblem, shop_of

router = APIRouter()
ASSET = re.compile(r"^(logo\.(png|jpg|jpeg|svg|webp|gif)|theme\.css)\Z")


def theme_css(site: SiteConfig) -> str:
    """CSS variables the storefront's stylesheet uses (colours were validated as hex)."""
    c = site.colours
    return (":root{"
            f"--kit-primary:{c.primary};--kit-accent:{c.accent};--kit-bg:{c.background};--kit-text:{c.text};"
            "}\n")


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
        return Response(theme_css(shop.site), media_type="text/css", headers={"Cache-Control": "public, max-age=300"})
    raise HTTPProblem(404, "err.not_found")
