"""Build the storefront ASGI app from settings: database, caches, templates, routes, error pages."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from kitcore.bodylimit import BodyLimit
from kitcore.errorbody import error_body
from kitcore.serving import NO_TELEMETRY
from kitcore.site import DEFAULT_TIME_ZONE
from kitcore.theme import Theme, load_theme
from sitedb.buyer import BuyerBox
from sitedb.engine import POOL_SIZE, make_engine, session_factory
from storefront import clock
from storefront.context import Shop, make_signers
from storefront.forwarded import ForwardedFromProxy, TrustedPeers
from storefront.head import HeadAsGet
from storefront.headers import SecurityHeaders
from storefront.metrics import StorefrontMetrics, request_metrics
from storefront.outage import database_down, maintenance_page
from storefront.plugin_adapter import PluginHostCache
from storefront.ratelimit import Limits
from storefront.settings import StorefrontSettings
from storefront.siteconfig import load_site_config
from storefront.state import PageCache, ReadCache
from storefront.static_assets import VersionedStatic
from storefront.web import HTTPProblem, render

if TYPE_CHECKING:
    from jinja2 import Environment

log = logging.getLogger("storefront")
HERE = Path(__file__).parent
STARTED_AT = time.time()  # in /healthz: the agent counts a new value as a restart
CONNECT_SECONDS = 0.7  # a page that cannot reach the database still answers (503) within a second
STATEMENT_SECONDS = 10.0  # no page's query takes near this; a stuck one ends instead of holding a thread


def make_templates(static: VersionedStatic, time_zone: str = DEFAULT_TIME_ZONE, theme: Theme | None = None) -> Environment:
    """The shop's and admin's templates; every time they show is in the site's zone, every static file
    they link is its versioned name.

    With a custom theme: a sandboxed environment (no attribute starting with _, no
    changing the page's data) that looks in the theme before the kit's templates.
    """
    from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape
    from storefront.theme_sandbox import ThemeSandbox

    kit = FileSystemLoader(HERE / "templates")
    options: dict[str, Any] = {"autoescape": select_autoescape(["html"], default=True), "undefined": StrictUndefined,
                               "trim_blocks": True, "lstrip_blocks": True}
    if theme is not None:
        env: Environment = ThemeSandbox(loader=ChoiceLoader([DictLoader(theme.templates), kit]), **options)
    else:
        env = Environment(loader=kit, **options)
    env.globals["static_url"] = static.url
    env.filters["dt"] = lambda d: clock.local(d, time_zone)
    env.filters["unix_dt"] = lambda ts: clock.local_unix(ts, time_zone)
    for name in ("base.html", "maintenance.html", "error.html"):  # compiled now: an outage's first page is not slower
        env.get_template(name)
    return env


def build_shop(settings: StorefrontSettings) -> Shop:
    url = settings.resolved_database_url()
    if settings.migrate_on_start:
        from sitedb.migrate import upgrade

        upgrade(url)
    engine = make_engine(url, connect_timeout=CONNECT_SECONDS, statement_timeout=STATEMENT_SECONDS)
    sessions = session_factory(engine)
    site_key = settings.site_key()
    metrics = StorefrontMetrics()
    static = VersionedStatic(HERE / "static")
    limits = Limits(settings.checkouts_per_minute, throttled=lambda name: metrics.throttled.labels(name).inc())
    # plugins create their tables where the schema is made: here only when this storefront migrates it
    plugins = PluginHostCache(settings.plugin_choice(), settings.plugin_config_dir, engine if settings.migrate_on_start else None)
    site = load_site_config(settings.site_config)
    theme = load_theme(settings.theme_dir) if settings.theme_dir is not None else None
    return Shop(
        settings=settings, site=site, engine=engine, sessions=sessions,
        cache=ReadCache(sessions, settings.state_cache_seconds), pages=PageCache(settings.state_cache_seconds), limits=limits,
        signers=make_signers(settings.secret_key()), plugins=plugins,
        site_key=site_key, templates=make_templates(static, site.time_zone), static=static,
        buyers=BuyerBox(site_key) if site_key else None, metrics=metrics,
        themed=make_templates(static, site.time_zone, theme) if theme is not None else None,
        theme_css=theme.css if theme is not None else "",
    )


@asynccontextmanager
async def request_threads_within_pool(_app: FastAPI) -> AsyncIterator[None]:
    """Request handlers run on at most as many threads as the database pool holds connections (Starlette's
    default is 40): a burst then waits for a thread, in order, rather than for a pooled connection, which
    gives up after a few seconds and shows the buyer a maintenance page although the database is fine."""
    from anyio import to_thread

    to_thread.current_default_thread_limiter().total_tokens = POOL_SIZE
    yield


def create_app(settings: StorefrontSettings | None = None) -> FastAPI:
    from storefront import api, branding, restock, shop
    from storefront.admin import routes as admin
    from storefront.admin.auth import LoginRequired

    settings = settings or StorefrontSettings()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="storefront", telemetry=NO_TELEMETRY,
                  lifespan=request_threads_within_pool)
    app.state.shop = build_shop(settings)
    app.include_router(shop.router)
    app.include_router(restock.router)
    app.include_router(admin.public)
    app.include_router(admin.router)
    app.include_router(api.router)
    app.include_router(branding.router)
    app.mount("/static", app.state.shop.static, name="static")
    app.add_middleware(request_metrics, metrics=app.state.shop.metrics)

    @app.get("/healthz", name="healthz")
    def healthz() -> Response:
        try:
            with app.state.shop.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # report, never crash the probe
            log.warning("health check: database unreachable: %s", type(exc).__name__)
            return JSONResponse(error_body("database_unreachable", "the site database does not answer",
                                           status="error", database="unreachable"), status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "started_at": int(STARTED_AT)})

    app.add_exception_handler(api.ApiError, api.api_error_response)  # type: ignore[arg-type]

    @app.exception_handler(HTTPProblem)
    async def problem(request: Request, exc: HTTPProblem) -> Response:
        return render(request, "error.html", {"message_key": exc.message_key, "status": exc.status}, status=exc.status, private=True)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/admin/login", status_code=303)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", {"message_key": "err.not_found", "status": 404}, status=404, offline=True)

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return render(request, "error.html", {"message_key": "err.not_found", "status": 405}, status=405, offline=True)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def database_error(request: Request, exc: Exception) -> Response:
        if database_down(exc):
            return maintenance_page(request, exc)
        return await server_error(request, exc)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        if database_down(exc):  # e.g. raised while a template read the licence
            return maintenance_page(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(request, "error.html", {"message_key": "err.server", "status": 500}, status=500, offline=True)

    app.router.redirect_slashes = False
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit, default=settings.max_body_bytes)
    return SecurityHeaders(app)  # type: ignore[return-value]


def shop_of(app: Any) -> Shop:
    """The Shop behind the ASGI wrappers the server runs (forwarded address, security headers)."""
    while not hasattr(app, "state"):
        app = app.app
    return app.state.shop


def served_app(settings: StorefrontSettings) -> ForwardedFromProxy:
    """What the server runs: the app, with the client address and scheme only the stack's proxy may forward."""
    return ForwardedFromProxy(create_app(settings), TrustedPeers(settings.forwarded_allow_ips))
