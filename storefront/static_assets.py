"""The storefront's static files under their plain and their versioned names (kitcore.assets).

Pages link the versioned name, which the proxy serves itself from its image;
the storefront answers it too (a proxy built from another checkout, or none),
marked immutable like the proxy's copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.staticfiles import StaticFiles

from kitcore.assets import IMMUTABLE, versioned

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import Scope


class VersionedStatic(StaticFiles):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self.urls = {plain: f"/static/{hashed}" for plain, hashed in versioned(directory).items()}
        self.plain_of = {url.removeprefix("/static/"): plain for plain, url in self.urls.items()}

    def url(self, name: str) -> str:
        """The versioned URL of a static file, for templates."""
        return self.urls[name]

    async def get_response(self, path: str, scope: "Scope") -> "Response":
        plain = self.plain_of.get(path)
        response = await super().get_response(plain or path, scope)
        if plain is not None and response.status_code == 200:
            response.headers["Cache-Control"] = IMMUTABLE
        return response
