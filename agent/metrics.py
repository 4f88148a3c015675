"""The agent's Prometheus metrics: one registry, `kitagent_` prefix, low-cardinality labels.

Labels only ever take values from small fixed sets (endpoint names, error
kinds, decisions, licence states); never an order id, buyer, SKU or token.
Gauges that need the database are refreshed by the stats loop, so a scrape
is pure rendering and stays fast.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

from agent import VERSION
from kitcore.licence.commands import COMMAND_TYPES

LICENCE_STATES = ("active", "grace", "suspended", "revoked", "expired")
ENDPOINTS = ("catalog", "orders", "order_status", "orders_status", "heartbeat", "support_bundle", "statements",
             "statement_answer", "ledger_entries", "payout_request", "payouts", "balance",
             "restock")
HQ_LINK_STATES = ("ok", "unreachable", "refused")
DECISIONS = ("approve", "review", "reject")
COMMAND_REJECTIONS = ("signature", "wrong_site", "expired", "replayed", "malformed")
COMMAND_OUTCOMES = ("applied", "refused", "failed")
HQ_HELD_STATES = ("suspended", "revoked")  # HQ refusing a request for these is a state, not an error
# Where the agent touches the database: the four loops, the stats round and its SELECT 1 check.
DB_OPERATIONS = ("sync", "orders", "order_status", "restock", "heartbeat", "stats", "check")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ProcessCollector:
    """The agent process's own CPU and memory, read at scrape time (psutil, microseconds)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()

    def describe(self):  # type: ignore[no-untyped-def]
        return []

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        times = self.process.cpu_times()
        cpu = CounterMetricFamily("kitagent_process_cpu_seconds", "CPU time used by the agent process")
        cpu.add_metric([], times.user + times.system)
        rss = GaugeMetricFamily("kitagent_process_resident_memory_bytes", "Agent resident memory")
        rss.add_metric([], self.process.memory_info().rss)
        start = GaugeMetricFamily("kitagent_process_start_time_seconds",
                                  "Unix time the agent process started (a change is a restart)")
        start.add_metric([], self.process.create_time())
        return [cpu, rss, start]


class AgentMetrics:
    """Every metric the agent exposes, created on a private registry."""

    def __init__(self) -> None:
        disable_created_metrics()  # `*_created` series would double the count and say nothing useful here
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.build_info = Gauge("kitagent_build_info", "Agent build, value is always 1",
                                ["version", "python"], registry=r)
        self.build_info.labels(VERSION, platform.python_version()).set(1)
        self.up = Gauge("kitagent_up", "1 once the agent has started its loops", registry=r)

        # licence
        self.licence_state = Gauge("kitagent_licence_state", "1 for the licence's current state",
                                   ["state"], registry=r)
        self.licence_expiry = Gauge("kitagent_licence_expiry_seconds",
                                    "Seconds until the licence expires (negative in grace)", registry=r)
        self.set_licence_state("active")
        self._licence_held: str | None = None  # the placeholder above is not a state the agent held
        # catalog sync
        self.sync_last_success = Gauge("kitagent_catalog_last_sync_timestamp_seconds",
                                       "Unix time of the last successful catalog sync", registry=r)
        self.sync_duration = Histogram("kitagent_catalog_sync_duration_seconds",
                                       "Duration of catalog sync runs", ["mode"],
                                       buckets=_SYNC_BUCKETS, registry=r)
        self.catalog_items = Gauge("kitagent_catalog_items", "SKUs in the site catalog", registry=r)
        self.catalog_changes = Counter("kitagent_catalog_changes_total",
                                       "Catalog rows written by sync", ["op"], registry=r)
        for op in ("upsert", "delete", "unchanged", "swept", "repriced"):
            self.catalog_changes.labels(op)
        # orders
        self.orders_forwarded = Counter("kitagent_orders_forwarded_total",
                                        "Orders HQ has decided, by first decision", ["decision"], registry=r)
        for d in DECISIONS:
            self.orders_forwarded.labels(d)
        self.reviews_resolved = Counter("kitagent_orders_review_resolved_total",
                                        "Orders under review that HQ resolved", ["status"], registry=r)
        for s in ("delivered", "rejected"):
            self.reviews_resolved.labels(s)
        self.payments_resolved = Counter("kitagent_orders_payment_resolved_total",
                                         "Orders awaiting the buyer's payment that HQ resolved (paid and delivered, "
                                         "expired, held for review, refunded; refunded also after delivery)",
                                         ["status"], registry=r)
        for s in ("delivered", "expired", "review", "refunded"):
            self.payments_resolved.labels(s)
        self.outbox_backlog = Gauge("kitagent_outbox_backlog", "Orders waiting on HQ, by status",
                                    ["status"], registry=r)
        for s in ("pending", "review"):
            self.outbox_backlog.labels(s)
        self.outbox_oldest_age = Gauge("kitagent_outbox_oldest_pending_age_seconds",
                                       "Age of the oldest order not yet forwarded", registry=r)
        self.outbox_alert = Gauge("kitagent_outbox_backlog_alert",
                                  "1 when the outbox backlog is above its alert threshold", registry=r)
        self.forward_batch_size = Histogram("kitagent_forward_batch_orders", "Orders per batch sent to HQ",
                                            buckets=(1, 5, 10, 25, 50, 100, 200), registry=r)
        # HQ requests
        self.hq_latency = Histogram("kitagent_hq_request_duration_seconds", "HQ API request latency",
                                    ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.hq_errors = Counter("kitagent_hq_errors_total", "Failed HQ API requests by kind",
                                 ["endpoint", "kind"], registry=r)
        for e in ENDPOINTS:
            self.hq_latency.labels(e)
        self.hq_link = Gauge("kitagent_hq_link_state",
                             "1 for the state of the path to HQ: ok, unreachable (no answer), refused (HQ said no)",
                             ["state"], registry=r)
        self.hq_link_since = Gauge("kitagent_hq_link_state_since_timestamp_seconds",
                                   "Unix time the HQ link entered its current state", registry=r)
        self.hq_link_changes = Counter("kitagent_hq_link_changes_total", "Changes of the HQ link state, by new state",
                                       ["state"], registry=r)
        self.hq_detection = Gauge("kitagent_hq_unreachable_detection_seconds",
                                  "How long the request that last found HQ unreachable took to fail", registry=r)
        self.hq_probes = Counter("kitagent_hq_probes_total", "Probes of an unreachable HQ, by result",
                                 ["result"], registry=r)
        for result in ("answered", "unreachable"):
            self.hq_probes.labels(result)
        self.heartbeat_last_success = Gauge("kitagent_heartbeat_last_success_timestamp_seconds",
                                            "Unix time of the last heartbeat HQ answered", registry=r)
        self.push_connected = Gauge("kitagent_push_connected",
                                    "1 while the push channel to HQ answers; 0: commands come with heartbeats",
                                    registry=r)
        # commands
        self.commands_applied = Counter("kitagent_commands_applied_total", "HQ commands applied",
                                        ["type"], registry=r)
        self.commands_rejected = Counter("kitagent_commands_rejected_total",
                                         "HQ commands refused before acting", ["reason"], registry=r)
        for reason in COMMAND_REJECTIONS:
            self.commands_rejected.labels(reason)
        self.applied_seq = Gauge("kitagent_commands_applied_seq", "Highest command sequence applied", registry=r)
        self.command_outcomes = Counter("kitagent_command_outcomes_total",
                                        "Verified HQ commands by type and what became of them", ["type", "outcome"],
                                        registry=r)
        for t in COMMAND_TYPES:
            for o in COMMAND_OUTCOMES:
                self.command_outcomes.labels(t, o)
        self.licence_transitions = Counter("kitagent_licence_transitions_total",
                                           "Licence state changes seen by the agent", ["from_state", "to_state"],
                                           registry=r)
        self.hq_refused = Counter("kitagent_hq_refused_total",
                                  "HQ requests refused because HQ holds the licence suspended or revoked "
                                  "(a state, not an error)", ["endpoint", "state"], registry=r)
        for e in ENDPOINTS:
            for st in HQ_HELD_STATES:
                self.hq_refused.labels(e, st)
        # database
        self.db_check = Gauge("kitagent_db_check_duration_seconds",
                              "Latency of the last database round trip (SELECT 1)", registry=r)
        self.db_up = Gauge("kitagent_db_up", "1 when the last database check succeeded", registry=r)
        self.db_errors = Counter("kitagent_db_errors_total", "Database errors (timeouts included) by operation",
                                 ["operation"], registry=r)
        self.db_timeouts = Counter("kitagent_db_timeouts_total",
                                   "Database operations that timed out (statement, lock or connect timeout)",
                                   ["operation"], registry=r)
        for op in DB_OPERATIONS:
            self.db_errors.labels(op)
            self.db_timeouts.labels(op)
        # process and host
        r.register(ProcessCollector())
        self.host_cpu = Gauge("kitagent_host_cpu_usage_ratio", "Host CPU busy ratio since last sample", registry=r)
        self.host_memory_total = Gauge("kitagent_host_memory_total_bytes", "Host memory", registry=r)
        self.host_memory_available = Gauge("kitagent_host_memory_available_bytes", "Host memory available",
                                           registry=r)
        self.host_disk_free = Gauge("kitagent_host_disk_free_bytes", "Free bytes on the data filesystem", registry=r)
        self.host_disk_total = Gauge("kitagent_host_disk_total_bytes", "Size of the data filesystem", registry=r)
        self.container_up = Gauge("kitagent_container_up", "1 when the stack's container is running and healthy",
                                  ["service"], registry=r)
        self.container_restarts = Counter("kitagent_container_restarts_total",
                                          "Restarts of the stack's containers the agent noticed", ["service"],
                                          registry=r)
        self.loop_errors = Counter("kitagent_loop_errors_total", "Unexpected errors caught by a loop",
                                   ["loop"], registry=r)

    def set_hq_link(self, state: str, since: float) -> None:
        for s in HQ_LINK_STATES:
            self.hq_link.labels(s).set(1 if s == state else 0)
            self.hq_link_changes.labels(s)
        self.hq_link_since.set(since)

    def set_licence_state(self, state: str) -> None:
        """Show `state`; a change from a state the agent already held is counted as a transition."""
        previous = getattr(self, "_licence_held", None)
        for s in LICENCE_STATES:
            self.licence_state.labels(s).set(1 if s == state else 0)
        if state not in LICENCE_STATES:
            return
        if previous is not None and previous != state:
            self.licence_transitions.labels(previous, state).inc()
        self._licence_held = state

    def render(self) -> bytes:
        return generate_latest(self.registry)
