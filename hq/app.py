"""The HQ ASGI app: `create_app(settings)` wires the service, routers and error format."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from hq.settings import HQSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hq.service import HQ

log = logging.getLogger("hq")


def create_app(settings: HQSettings | None = None, hq: "HQ | None" = None) -> "FastAPI":
    """Build the app; opens (and migrates) the HQ in `settings.dir` unless `hq` is given."""
    from fastapi import FastAPI

    from hq import api_admin, api_applications, api_complaints, api_grades, api_payments, api_settlement, api_site, api_stock
    from hq import apply_pages, fleet, fleet_applications, fleet_grades, fleet_payments, fleet_settlement
    from hq.headers import FleetHeaders
    from hq.fast_paths import HANDLERS as FAST_PATHS, SiteFastPaths
    from hq.metrics import request_metrics
    from hq.apply_limits import ApplyRateLimit
    from kitcore.serving import NO_TELEMETRY
    from kitcore.bodylimit import BodyLimit
    from hq.ratelimit import RateLimiter
    from hq.service import HQ

    settings = settings or (hq.settings if hq else HQSettings())
    service = hq or HQ.open(settings, migrate=settings.migrate)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_housekeeping(service))
        watcher = asyncio.create_task(_watch_fleet(service))
        stock_watcher = asyncio.create_task(_watch_stock(service))
        payments = asyncio.create_task(_sweep_payments(service))
        reconciling = asyncio.create_task(_reconcile_payments(service))
        sanctions = asyncio.create_task(_lift_sanctions(service))
        rollouts = asyncio.create_task(_advance_rollouts(service))
        reminders = asyncio.create_task(_remind_applicants(service))
        pool = await _open_beat_pool(service)
        if pool is not None:
            app.state.beat_batcher = _beat_batcher(pool)
        push = _open_push(app, service)
        try:
            yield
        finally:
            task.cancel()
            watcher.cancel()
            stock_watcher.cancel()
            payments.cancel()
            reconciling.cancel()
            sanctions.cancel()
            rollouts.cancel()
            reminders.cancel()
            push.cancel()
            app.state.push.close()
            service.on_commands.remove(app.state.push.wake_threadsafe)
            app.state.beat_batcher = None
            if pool is not None:
                await pool.close()

    docs = settings.api_docs  # off in production if the schema should not be public
    app = FastAPI(
        title="kitctl HQ API", version="1", lifespan=lifespan, docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None,
        description="Licence authority, catalog, risk engine, fulfilment and fleet control for kitctl sub-sites.",
        telemetry=NO_TELEMETRY,
    )
    app.state.hq = service
    app.state.beat_batcher = None  # heartbeats use it on PostgreSQL once the lifespan made it
    app.state.push = None  # the push channel's hub (hq.push), made by the lifespan
    app.state.push_reads = None  # its batched reads (hq.push_reads), ditto
    app.state.limiter = RateLimiter(settings.site_rate_per_second, settings.site_rate_burst)
    _install_errors(app)
    app.include_router(api_site.router)
    app.include_router(api_admin.router)
    app.include_router(api_settlement.site_router)
    app.include_router(api_settlement.admin_router)
    app.include_router(fleet.router)
    app.include_router(fleet_settlement.router)
    app.include_router(fleet_payments.router)
    app.include_router(api_payments.router)
    app.include_router(api_stock.admin_router)
    app.include_router(api_stock.router)
    app.include_router(api_grades.router)
    app.include_router(api_grades.site_router)
    app.include_router(api_complaints.router)
    app.include_router(api_complaints.admin_router)
    app.include_router(fleet_grades.router)
    app.include_router(api_applications.router)
    app.include_router(api_applications.admin_router)
    app.include_router(apply_pages.router)
    app.include_router(fleet_applications.router)
    if settings.fast_paths:
        app.add_middleware(SiteFastPaths)
    app.add_middleware(FleetHeaders)
    app.add_middleware(BodyLimit, default=settings.max_body_bytes, per_path=_body_limits())
    app.add_middleware(ApplyRateLimit, burst=settings.apply_burst, per_hour=settings.apply_per_hour)
    # added last: outermost, so the fast paths are counted, under their own paths
    app.add_middleware(request_metrics,
                       served_before_routing=tuple(path for _, path in FAST_PATHS) if settings.fast_paths else ())
    _install_metrics(app, service)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _install_metrics(app: "FastAPI", service: "HQ") -> None:
    """`GET /metrics` for Prometheus, behind its own bearer token (hq.metrics.metrics_token)."""
    import hmac

    from starlette.requests import Request
    from starlette.responses import Response

    from hq.errors import ApiError
    from hq.metrics import FleetCollector, metrics_token, render

    settings = service.settings
    token = metrics_token(settings.metrics_token_file or settings.dir / "metrics-token")
    fleet_gauges = FleetCollector(service)

    async def prometheus_metrics(request: Request) -> Response:
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
        from starlette.concurrency import run_in_threadpool

        from hq.auth import bearer

        if not hmac.compare_digest(bearer(request).encode(), token.encode()):
            raise ApiError(401, "unauthorized", "metrics token not recognised", headers={"WWW-Authenticate": "Bearer"})
        body = await run_in_threadpool(render, fleet_gauges)  # the fleet gauges read the database
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", prometheus_metrics, methods=["GET"], include_in_schema=False)


def _body_limits() -> dict[str, int]:
    """Paths whose bodies may differ from the default: the heartbeat is small, a card-key CSV large.

    The CSV endpoint authenticates the operator before it reads the body, so
    its larger limit is never spent on a caller who is nobody.
    """
    from hq import api_admin, apply_limits, heartbeat_api

    # applicants' materials: sized to the documented limits (hq.apply_limits; hq.application_files checks each file)
    return {heartbeat_api.PATH: heartbeat_api.MAX_BODY_BYTES, "/v1/admin/catalog/card-keys": api_admin.MAX_CSV_BYTES,
            "/v1/applications": apply_limits.API_BODY_BYTES, "/apply": apply_limits.PAGE_BODY_BYTES}


def _install_errors(app: "FastAPI") -> None:
    """Every error is `{"error": code, "detail": one line}`."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from hq.errors import ApiError, Unavailable, error_code, error_response, first_error, known_error_response
    from kitcore.errors import InvalidInput

    body = error_response

    @app.exception_handler(ApiError)
    @app.exception_handler(Unavailable)
    @app.exception_handler(InvalidInput)
    async def _known(_: Request, exc: Exception) -> JSONResponse:
        return known_error_response(exc) or body(500, "internal", "internal error; see HQ's log")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return body(422, error_code(exc.errors()), first_error(exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 400:  # FastAPI's "error parsing the body": a validation failure like any other
            return body(422, "invalid_request", "body: is not valid JSON")
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path) or [headers.get("Allow", "")])
        return body(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return body(500, "internal", "internal error; see HQ's log")


def allowed_methods(app: "FastAPI", path: str) -> list[str] | None:
    """Every method /openapi.json documents for `path` (Starlette's 405 names only the first route's); None if none."""
    import re

    templates = getattr(app.state, "allow_templates", None)
    if templates is None:
        templates = [(re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(p)) + "$"), {m.upper() for m in ops})
                     for p, ops in app.openapi()["paths"].items()]
        app.state.allow_templates = templates
    methods = set().union(*(ops for pattern, ops in templates if pattern.match(path)))
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods) or None


async def _open_beat_pool(hq: "HQ") -> Any:
    """This worker's asyncpg pool for heartbeats (hq.heartbeat_pg); None on SQLite."""
    from hq import heartbeat_pg
    from hq.db import is_postgres

    if not is_postgres(hq.engine):
        return None
    return await heartbeat_pg.open_pool(hq.engine.url.render_as_string(hide_password=False),
                                        hq.settings.db_connect_seconds)


def _beat_batcher(pool: Any) -> Any:
    from functools import partial

    from hq import heartbeat_pg
    from hq.heartbeat_batch import BeatBatcher

    return BeatBatcher(partial(heartbeat_pg.record_many, pool))


def _open_push(app: "FastAPI", hq: "HQ") -> "asyncio.Task[None]":
    """This worker's push hub and what wakes it: LISTEN on PostgreSQL, a sequence poller on SQLite.

    On SIGTERM the hub answers every long-poll at once (uvicorn would otherwise wait
    for them until its graceful-shutdown time runs out).
    """
    from hq import push, push_pg
    from hq.db import is_postgres
    from hq.push_reads import PendingReads

    hub = push.PushHub()
    hub.attach(asyncio.get_running_loop())
    app.state.push = hub
    app.state.push_reads = PendingReads(hq)
    hq.on_commands.append(hub.wake_threadsafe)
    _close_on_signals(hub)
    if is_postgres(hq.engine):
        return asyncio.create_task(push_pg.listen(hub, hq.engine.url.render_as_string(hide_password=False),
                                                  lambda: push.wake_advanced(hub, hq), hq.settings.db_connect_seconds))
    return asyncio.create_task(push.poll_sqlite(hub, hq))


def _close_on_signals(hub: Any) -> None:
    """Chain the hub's close in front of the server's SIGTERM/SIGINT handlers (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            hub.close_threadsafe()
            previous(number, frame)

        signal.signal(sig, handler)


async def _lift_sanctions(hq: "HQ") -> None:
    """Timed suspensions (hq.sanctions): lift those whose time ran out, every `sanction_check_seconds`."""
    from hq import sanctions

    await _every(lambda: hq.settings.sanction_check_seconds, sanctions.lift_due, hq, "lifting timed suspensions")


async def _advance_rollouts(hq: "HQ") -> None:
    """Rollouts by rings (hq.rollouts): start the next ring once the last one soaked, every `rollout_check_seconds`."""
    from hq import rollouts

    await _every(lambda: hq.settings.rollout_check_seconds, rollouts.advance_all, hq, "advancing rollouts")


async def _remind_applicants(hq: "HQ") -> None:
    """Applicants' materials about to expire (hq.applications.remind_expiring), every `application_check_seconds`."""
    from hq import applications

    await _every(lambda: hq.settings.application_check_seconds, applications.remind_expiring, hq,
                 "application reminders")


async def _every(seconds: "Callable[[], float]", work: "Callable[[HQ], object]", hq: "HQ", what: str) -> None:
    """Run `work(hq)` in a worker thread now and every `seconds()`; a failed round is logged, the next retries."""
    from starlette.concurrency import run_in_threadpool

    while True:
        try:
            await run_in_threadpool(work, hq)
        except Exception:  # keep serving; the next round retries
            log.exception("%s failed", what)
        await asyncio.sleep(seconds())


async def _housekeeping(hq: "HQ") -> None:
    """Expire idempotency keys, prune old tombstones, charge the year's base fees (if on), now and then."""
    from starlette.concurrency import run_in_threadpool

    from hq import catalog, orders
    from hq.ledger import events

    while True:
        try:
            await run_in_threadpool(orders.purge_keys, hq)
            await run_in_threadpool(catalog.prune, hq)
            if hq.settings.auto_base_fee:
                await run_in_threadpool(events.charge_due_base_fees, hq)
        except Exception:  # keep serving; the next round retries
            log.exception("housekeeping failed")
        await asyncio.sleep(hq.settings.housekeeping_seconds)


async def _sweep_payments(hq: "HQ") -> None:
    """Unpaid payments past their time: query the gateway, else expire (hq.payments.flow.sweep)."""
    from hq.payments import flow

    await _every(lambda: hq.settings.payment_check_seconds, flow.sweep, hq, "payment sweep")


async def _reconcile_payments(hq: "HQ") -> None:
    """The daily reconciliation of each gateway's books (hq.payments.reconcile.due), looked for hourly."""
    from hq.payments import reconcile

    await _every(lambda: hq.settings.payment_reconcile_seconds, reconcile.due, hq, "payment reconciliation")


async def _watch_fleet(hq: "HQ") -> None:
    """Fleet alerts (hq.fleet_alerts): evaluate and notify every `alert_check_seconds`."""
    from hq import fleet_alerts

    await _every(lambda: hq.settings.alert_check_seconds, fleet_alerts.watch, hq, "fleet alert round")


async def _watch_stock(hq: "HQ") -> None:
    """Stock warnings (hq.stock): states, operator notices and back-in-stock mail, with the fleet alerts' period."""
    from hq import stock

    await _every(lambda: hq.settings.alert_check_seconds, stock.watch, hq, "stock round")
