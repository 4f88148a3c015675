"""Everything one running storefront holds: settings, database, caches, limits, signers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from sitedb.buyer import BuyerBox
from storefront.metrics import StorefrontMetrics
from storefront.plugin_adapter import PluginHostCache
from storefront.ratelimit import Limits
from storefront.settings import StorefrontSettings
from storefront.signing import Signer
from storefront.siteconfig import SiteConfig
from storefront.state import LicenceView, PageCache, ReadCache, database_down, read_licence


@dataclass
class Signers:
    csrf: Signer
    access: Signer
    nonce: Signer


@dataclass
class Shop:
    settings: StorefrontSettings
    site: SiteConfig
    engine: Engine
    sessions: sessionmaker[Session]
    cache: ReadCache
    pages: PageCache
    limits: Limits
    signers: Signers
    plugins: PluginHostCache
    site_key: bytes | None
    templates: Any  # jinja2.Environment
    metrics: StorefrontMetrics
    buyers: BuyerBox | None = None  # seals and opens buyer contact, account and IP (needs the site key)
    static: Any = None  # storefront.static_assets.VersionedStatic: /static/, and the URLs pages link
    themed: Any = None  # the sandboxed environment with the site's custom theme first (None: no theme)
    theme_css: str = ""  # the custom theme's CSS (checked), for /branding/theme.css when no proxy serves it

    def licence(self) -> LicenceView:
        return self.cache.get("licence", read_licence)

    def last_licence(self) -> LicenceView:
        """The licence as last read, however old, without touching the database (pages shown in an outage)."""
        return self.cache.peek("licence") or LicenceView(known=True, status="active", reason=None)

    def licence_for_notice(self) -> LicenceView:
        """The licence for a page's notice: fresh, or the last one read while the database is unreachable."""
        try:
            return self.licence()
        except Exception as exc:
            if not database_down(exc):
                raise
            return self.last_licence()

    def clear_caches(self) -> None:
        """After the admin changes prices: the next page shows them."""
        self.cache.clear()
        self.pages.clear()

    async def alicence(self) -> LicenceView:
        return await self.cache.aget("licence", read_licence)

    def plugin_host(self) -> Any:
        return self.plugins.get(self.licence().features)


def make_signers(secret: bytes) -> Signers:
    return Signers(csrf=Signer(secret, "csrf"),
                   access=Signer(secret, "order-access"), nonce=Signer(secret, "checkout-nonce"))
