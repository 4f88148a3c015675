"""The storefront's Prometheus metrics (`kitshop_` prefix), served on their own listener.

Labels come from small fixed sets: the route *template* (`/p/{sku}`, never the SKU),
the method, the status code, an outcome name or a limit name; never a buyer, an order
id or an address. `/metrics` is not part of the shop's app (the proxy forwards every
path to it): it has its own port on the stack's network (KIT_METRICS_BIND).
"""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

from kitcore import asgi_metrics

if TYPE_CHECKING:
    from starlette.types import ASGIApp

CHECKOUT_OUTCOMES = ("placed", "duplicate", "invalid", "closed", "unavailable", "expired", "throttled")
LOOKUP_OUTCOMES = ("ok", "failed", "throttled")
LIMITS = ("checkout_ip", "lookup_ip", "lookup", "login_ip", "login")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class StorefrontMetrics:
    """Every metric the storefront exposes, on a private registry."""

    def __init__(self) -> None:
        from kitcore import __version__

        disable_created_metrics()
        r = self.registry = CollectorRegistry(auto_describe=True)
        Gauge("kitshop_build_info", "Storefront build, value is always 1", ["version", "python"],
              registry=r).labels(__version__, platform.python_version()).set(1)
        self.requests = Counter("kitshop_http_requests_total", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("kitshop_http_request_duration_seconds", "HTTP request latency by route template",
                                 ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.checkouts = Counter("kitshop_checkouts_total", "Checkout attempts by outcome", ["outcome"], registry=r)
        for o in CHECKOUT_OUTCOMES:
            self.checkouts.labels(o)
        self.lookups = Counter("kitshop_order_lookups_total", "Order lookups (order id + password) by outcome",
                               ["outcome"], registry=r)
        for o in LOOKUP_OUTCOMES:
            self.lookups.labels(o)
        self.throttled = Counter("kitshop_throttled_requests_total", "Requests refused by a rate limit",
                                 ["limit"], registry=r)
        for name in LIMITS:
            self.throttled.labels(name)
        self.started = Gauge("kitshop_process_start_time_seconds", "Unix time the storefront process started",
                             registry=r)
        self.started.set(time.time())

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_of(scope: dict[str, Any]) -> str:
    """The route template; static files and branding as one label each."""
    return asgi_metrics.route_of(scope, prefixes=("/static/", "/branding/"))


def request_metrics(app: "ASGIApp", metrics: StorefrontMetrics) -> asgi_metrics.RequestMetrics:
    """The middleware that counts and times every request (`kitcore.asgi_metrics`)."""
    def record(route: str, method: str, status: str, seconds: float) -> None:
        metrics.requests.labels(route, method, status).inc()
        metrics.latency.labels(route, method).observe(seconds)

    return asgi_metrics.RequestMetrics(app, record, route_of)


def serve_metrics(metrics: StorefrontMetrics, bind: str) -> Any:
    """Start the `/metrics` listener on `host:port` (a daemon thread); returns the server."""
    from prometheus_client import start_http_server

    host, _, port = bind.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=metrics.registry)
    return server
