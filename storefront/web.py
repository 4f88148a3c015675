"""Request helpers shared by the shop and the admin: rendering, locale, CSRF, cookies, client address."""

from __future__ import annotations

import functools
import hmac
import secrets
from typing import Any, Mapping

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from storefront.context import Shop
from storefront.i18n import LOCALES, category_label, known_label, reason_text, translator
from storefront.money import format_money

CSRF_COOKIE = "kit_csrf"
LANG_COOKIE = "kit_lang"


class HTTPProblem(Exception):
    """A refusal rendered as a page: status plus a message key."""

    def __init__(self, status: int, message_key: str, **params: Any) -> None:
        super().__init__(message_key)
        self.status, self.message_key, self.params = status, message_key, params


def shop_of(request: Request) -> Shop:
    return request.app.state.shop


def locale_of(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return wanted if wanted in LOCALES else shop_of(request).site.locale


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def buyer_address(request: Request) -> str | None:
    """The buyer's address as recorded on an order (and sent to HQ's IP rules); None when unknown.

    Behind the engine's userland proxy every buyer arrives from the network's
    gateway: recording that address would make HQ's per-IP rules hold every
    buyer, so it is recorded as unknown (`kitctl doctor` explains it).
    """
    address = request.client.host if request.client else None
    return None if address is None or address == default_gateway() else address


@functools.lru_cache(maxsize=1)
def default_gateway(route_table: str = "/proc/net/route") -> str | None:
    """The container's default gateway (the Docker network's gateway address), from the kernel's route table."""
    import ipaddress
    import struct

    try:
        lines = open(route_table, encoding="ascii").read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return str(ipaddress.IPv4Address(struct.pack("<L", int(fields[2], 16))))
    return None


def is_https(request: Request) -> bool:
    mode = shop_of(request).settings.cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    """Every cookie the storefront sets: HttpOnly, SameSite=Lax, Secure behind HTTPS."""
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=is_https(request), path="/")


def csrf_seed(request: Request) -> str:
    seed = getattr(request.state, "csrf_seed", None) or request.cookies.get(CSRF_COOKIE)
    if not seed or len(seed) > 64:
        seed = secrets.token_urlsafe(24)
        request.state.csrf_new = True
    request.state.csrf_seed = seed
    return seed


def csrf_token(request: Request) -> str:
    return shop_of(request).signers.csrf.mac(csrf_seed(request).encode())


def check_csrf(request: Request, form: Mapping[str, Any]) -> None:
    """The form must carry the token derived from this browser's CSRF cookie (and come from our origin)."""
    seed = request.cookies.get(CSRF_COOKIE)
    sent = str(form.get("csrf", ""))
    expected = shop_of(request).signers.csrf.mac(seed.encode()) if seed else ""
    if not seed or not hmac.compare_digest(sent, expected):
        raise HTTPProblem(403, "err.csrf")
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise HTTPProblem(403, "err.csrf")


class LazyCsrf:
    """The CSRF token, computed (and its cookie set) only if the page has a form that prints it."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def __str__(self) -> str:
        return csrf_token(self._request)

    def __html__(self) -> str:
        return str(self)


def _render_body(request: Request, template: str, context: dict[str, Any] | None, offline: bool = False) -> str:
    shop = shop_of(request)
    locale = locale_of(request)
    t = translator(locale)
    ctx = {
        "request": request, "q": None, "site": shop.site, "t": t, "locale": locale, "money": format_money,
        "category_label": lambda c: category_label(t, c), "csrf": LazyCsrf(request),
        "label": lambda prefix, value: known_label(t, prefix, value), "reason_text": lambda r: reason_text(t, r),
        "licence": shop.last_licence() if offline else shop.licence_for_notice(),
        "logo_url": f"/branding/{shop.site.logo}" if shop.site.logo else None,
    }
    ctx.update(context or {})
    return templates_for(shop, template, ctx["licence"]).get_template(template).render(ctx)


def templates_for(shop: Shop, template: str, licence: Any) -> Any:
    """The custom theme's sandboxed environment for a shop page while the licence grants it; else the kit's."""
    from kitcore.theme import FEATURE, TEMPLATES

    if shop.themed is not None and template in TEMPLATES and FEATURE in (getattr(licence, "features", None) or ()):
        return shop.themed
    return shop.templates


def render_public(request: Request, key: tuple[Any, ...], template: str, context_factory: Any) -> HTMLResponse:
    """A page with nothing personal on it (no form token, no order): its body is cached with the read cache's TTL."""
    shop = shop_of(request)
    licence = shop.licence()
    full_key = ("page", template, locale_of(request), licence.status, licence.reason, *key)
    body = shop.pages.get(full_key)
    if body is None:
        body = _render_body(request, template, context_factory())
        assert not getattr(request.state, "csrf_new", False), "a cached page must not carry a CSRF token"
        shop.pages.put(full_key, body)
    return _finish(request, HTMLResponse(body), private=False)


CSRF_SLOT = "__kit_csrf_slot__"
NONCE_SLOT = "__kit_nonce_slot__"


def render_form_page(request: Request, key: tuple[Any, ...], template: str, context_factory: Any, nonce: str) -> HTMLResponse:
    """A public page whose only personal parts are the form's CSRF token and nonce.

    The body is rendered once per TTL with placeholder slots and the tokens
    (URL-safe base64 and dots: nothing to escape) are filled in per request.
    """
    shop = shop_of(request)
    licence = shop.licence()
    full_key = ("form-page", template, locale_of(request), licence.status, licence.reason, *key)
    body = shop.pages.get(full_key)
    if body is None:
        body = _render_body(request, template, {**context_factory(), "csrf": CSRF_SLOT, "nonce": NONCE_SLOT})
        shop.pages.put(full_key, body)
    body = body.replace(CSRF_SLOT, csrf_token(request)).replace(NONCE_SLOT, nonce)
    return _finish(request, HTMLResponse(body), private=True)


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200,
           private: bool = False, offline: bool = False) -> HTMLResponse:
    """Render a page with the site, locale, licence notice and CSRF token available to the template.

    `offline`: the page must render without the database (error and maintenance pages), so the
    licence notice shows the last state read, not a fresh one.
    """
    body = _render_body(request, template, context, offline)
    return _finish(request, HTMLResponse(body, status_code=status), private)


def _finish(request: Request, response: HTMLResponse, private: bool) -> HTMLResponse:
    locale = locale_of(request)
    if getattr(request.state, "csrf_new", False):
        set_cookie(request, response, CSRF_COOKIE, request.state.csrf_seed, None)
    if request.query_params.get("lang") in LOCALES:
        set_cookie(request, response, LANG_COOKIE, locale, 365 * 86400)
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response
