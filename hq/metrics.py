"""HQ's Prometheus metrics (`kithq_` prefix): requests, risk decisions, heartbeats, the fleet.

HQ runs several uvicorn worker processes, so a counter in one worker's memory would be
one worker's share and a scrape would see whichever worker answered it. With more than
one worker `python -m hq` points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
the workers start: prometheus-client then keeps every counter and histogram in a
per-process file there, and a scrape of any worker sums them all (`MultiProcessCollector`).
The fleet gauges (sites by licence state, silent sites, the review queue, firing alerts)
are not counted anywhere: they are read from HQ's database at scrape time, by whichever
worker answers, so they are the same from every worker.

Labels are small fixed sets: route templates, methods, status codes, decisions, rule
names (a rule's reason without its parameters), licence states, alert kinds.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from kitcore import asgi_metrics

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.types import ASGIApp

    from hq.service import HQ

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DECISIONS = ("approve", "review", "reject")
# Every reason the risk engine and the catalog checks give, without its parameters (`amount_over:100000`).
RULES = ("blocked_account", "blocked_contact", "blocked_region", "blocked_ip", "amount_over", "quantity_over",
         "velocity_account", "velocity_contact", "velocity_ip", "site_daily_orders", "site_daily_amount",
         "new_site_daily_orders", "new_site_amount", "region_outside_licence", "unknown_sku",
         "category_not_licensed", "sku_inactive", "quantity_out_of_range", "account_mismatch", "out_of_stock")
LICENCE_STATES = ("active", "expired", "suspended", "revoked")  # as HQ sees them (hq.licences)
HEARTBEAT_OUTCOMES = ("recorded", "refused")
# What a gateway's notification (or HQ's query of it) did (hq.payments.flow).
PAYMENT_OUTCOMES = ("applied", "duplicate", "held", "waiting", "unpaid", "forged", "queried")
GATEWAYS = ("epay", "alipay", "wechat")
# What the daily reconciliation flags (hq.payments.reconcile).
RECONCILE_KINDS = ("paid_at_gateway_only", "amount_mismatch", "paid_at_hq_only", "refund_at_gateway_only",
                   "refund_at_hq_only")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class HQMetrics:
    """The counted metrics of this process (one set per process: see the module docstring)."""

    def __init__(self) -> None:
        from kitcore import __version__

        disable_created_metrics()
        r = self.registry = CollectorRegistry(auto_describe=True)
        Gauge("kithq_build_info", "HQ build, value is always 1", ["version", "python"], registry=r,
              multiprocess_mode="max").labels(__version__, platform.python_version()).set(1)
        self.requests = Counter("kithq_http_requests_total", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("kithq_http_request_duration_seconds", "HTTP request latency by route template",
                                 ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("kithq_risk_decisions_total", "Orders decided, by outcome", ["decision"],
                                 registry=r)
        self.rules = Counter("kithq_risk_rule_hits_total",
                             "Reasons given for decisions, by rule (one order can hit several)",
                             ["rule", "decision"], registry=r)
        self.order_groups = Histogram("kithq_order_group_requests",
                                      "Order requests decided together in one transaction (hq.order_groups)",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 200), registry=r)
        self.heartbeats = Counter("kithq_heartbeats_total", "Heartbeats received, by outcome", ["outcome"],
                                  registry=r)
        self.payment_notices = Counter("kithq_payment_notifications_total",
                                       "Payment gateway notifications, by gateway and outcome (forged: refused)",
                                       ["gateway", "outcome"], registry=r)
        for d in DECISIONS:
            self.decisions.labels(d)
        for g in GATEWAYS:
            for o in PAYMENT_OUTCOMES:
                self.payment_notices.labels(g, o)
        for o in HEARTBEAT_OUTCOMES:
            self.heartbeats.labels(o)

    def decided(self, decision: str, reasons: Iterable[str]) -> None:
        """Count one order's final decision and the rules behind it."""
        if decision not in DECISIONS:
            return
        self.decisions.labels(decision).inc()
        for reason in reasons:
            self.rules.labels(rule_name(reason), decision).inc()


    def payment_notice(self, gateway: str, outcome: str) -> None:
        """Count one notification; a gateway name outside the built-in set is `other` (the path is the caller's)."""
        self.payment_notices.labels(gateway if gateway in GATEWAYS else "other", outcome).inc()


def rule_name(reason: str) -> str:
    """`velocity_ip:5/60s` → `velocity_ip`; anything not in RULES (operator notes…) → `other`."""
    name = reason.split(":", 1)[0]
    return name if name in RULES else "other"


_metrics: HQMetrics | None = None
_metrics_lock = threading.Lock()


def metrics() -> HQMetrics:
    """This process's metrics, made on first use."""
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                _metrics = HQMetrics()
    return _metrics


# -- the fleet, read at scrape time --------------------------------------------
class FleetCollector:
    """Gauges read from HQ's database when scraped (cached for `ttl` seconds per worker)."""

    def __init__(self, hq: "HQ", ttl: float = 5.0) -> None:
        self.hq = hq
        self.ttl = ttl
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        return self._families({}, 0, 0, 0.0, {}) + reconciliation_families({})

    def collect(self) -> list[GaugeMetricFamily]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.ttl:
            self._cached = (now, self._read())
        return self._cached[1]

    def _read(self) -> list[GaugeMetricFamily]:
        from hq import fleet_stats

        stats = fleet_stats.read(self.hq)
        return self._families(stats.by_state, stats.silent, stats.review_depth, stats.review_oldest_age,
                              stats.alerts_by_kind) + reconciliation_families(stats.reconciled)

    def _families(self, by_state: dict[str, int], silent: int, depth: int, oldest: float,
                  alerts: dict[str, int]) -> list[GaugeMetricFamily]:
        from hq.fleet_alerts import KINDS

        sites = GaugeMetricFamily("kithq_sites", "Sites by licence state", labels=["state"])
        for state in LICENCE_STATES:
            sites.add_metric([state], by_state.get(state, 0))
        n = self.hq.settings.silent_heartbeats
        quiet = GaugeMetricFamily("kithq_sites_silent",
                                  f"Sites (not revoked) whose last heartbeat is older than {n} heartbeat intervals")
        quiet.add_metric([], silent)
        queue = GaugeMetricFamily("kithq_review_queue_orders", "Orders waiting for an operator's review")
        queue.add_metric([], depth)
        age = GaugeMetricFamily("kithq_review_queue_oldest_age_seconds",
                                "Age of the oldest order waiting for review (0 when none)")
        age.add_metric([], oldest)
        firing = GaugeMetricFamily("kithq_fleet_alerts_firing", "Fleet alerts HQ holds open, by kind",
                                   labels=["kind"])
        for kind in KINDS:
            firing.add_metric([kind], alerts.get(kind, 0))
        return [sites, quiet, queue, age, firing]


def reconciliation_families(latest: dict[str, tuple[bool, dict[str, int]]]) -> list[GaugeMetricFamily]:
    """The daily reconciliation (hq.payments.reconcile): each gateway's latest reconciled day."""
    differences = GaugeMetricFamily(
        "kithq_payment_reconciliation_differences",
        "Differences between a gateway's books and HQ's payments on its latest reconciled day, by kind",
        labels=["gateway", "kind"])
    failed = GaugeMetricFamily("kithq_payment_reconciliation_failed",
                               "1 when the latest reconciliation of a gateway could not read its books",
                               labels=["gateway"])
    for gateway, (broke, counts) in sorted(latest.items()):  # configured gateways: a few plugin names
        for kind in RECONCILE_KINDS:
            differences.add_metric([gateway, kind], counts.get(kind, 0))
        failed.add_metric([gateway], int(broke))
    return [differences, failed]


def render(fleet: FleetCollector) -> bytes:
    """The exposition for one scrape: this process's (or every worker's) counters, and the fleet."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client.multiprocess import MultiProcessCollector

        metrics()  # this worker's files exist even before it counted anything
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(metrics().registry))
    registry.register(fleet)
    return generate_latest(registry)


def metrics_token(path: "Path") -> str:
    """The bearer token `/metrics` asks for: read from `path`, made there (0600) on first use."""
    import secrets

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            from kitcore.errors import InvalidInput

            raise InvalidInput(f"{path.name}: the metrics token must be at least 16 characters") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


class _Forward:
    """Another registry's metrics, as one collector."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect()


# -- requests ----------------------------------------------------------------------
def _record(route: str, method: str, status: str, seconds: float) -> None:
    m = metrics()
    m.requests.labels(route, method, status).inc()
    m.latency.labels(route, method).observe(seconds)
    if route == "/v1/heartbeat" and method == "POST":
        m.heartbeats.labels("recorded" if status == "200" else "refused").inc()


def request_metrics(app: "ASGIApp", served_before_routing: tuple[str, ...] = ()) -> asgi_metrics.RequestMetrics:
    """The middleware counting every request (outermost, so the fast paths are counted too), by route template;
    the paths in `served_before_routing` (hq.fast_paths) and /metrics are their own templates."""
    known = ("/metrics", *served_before_routing)
    return asgi_metrics.RequestMetrics(app, _record, lambda scope: asgi_metrics.route_of(scope, known_paths=known))
