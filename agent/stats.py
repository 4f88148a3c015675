"""Periodic observations: database round trip, outbox, catalog, licence clock, host, containers.

They refresh gauges (so a scrape never waits on the database) and the
health summary the storefront shows and the heartbeat reports.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, text

from agent import db_errors
from agent.hqlink import HQLink
from agent.licence import combined_status, evaluate, time_reason
from agent.metrics import AgentMetrics
from agent.outbox import oldest_pending_age
from agent.probes import RestartTracker, StackProbes
from agent.state import merge_health, read_state, update_state
from agent.sync import catalog_size
from kitcore.errors import LicenceError
from kitcore.licence.keys import PinnedKeys

log = logging.getLogger("agent.stats")


class Observer:
    def __init__(self, engine: Engine, metrics: AgentMetrics, keys: PinnedKeys, data_path: Path,
                 docker_socket: Path | None = None, backlog_alert: int = 10000, link: HQLink | None = None,
                 stack_probes: dict[str, str] | None = None) -> None:
        self.engine = engine
        self.link = link
        self.metrics = metrics
        self.keys = keys
        self.data_path = data_path
        self.docker = DockerProbe(docker_socket) if docker_socket and docker_socket.exists() else None
        self.restarts = RestartTracker(metrics)
        self.probes = StackProbes(stack_probes, self.restarts) if stack_probes and self.docker is None else None
        self.postgres = engine.dialect.name == "postgresql"
        self.backlog_alert = backlog_alert
        self.summary: dict[str, Any] = {"db": "unknown"}
        self._cpu_sampled = False

    def check_db(self) -> bool:
        started = time.perf_counter()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            db_errors.record(self.metrics, "check", exc)
            self.metrics.db_up.set(0)
            self.summary["db"] = "down"
            return False
        self.metrics.db_check.set(time.perf_counter() - started)
        self.metrics.db_up.set(1)
        self.summary["db"] = "ok"
        return True

    def observe(self) -> dict[str, Any]:
        """One round of observations; database parts are skipped while it is down."""
        self.observe_host()
        if self.docker is not None:
            self.observe_containers()
        elif self.probes is not None:
            self.probes.run()
        if not self.check_db():
            if self.postgres and self.docker is None:
                self.restarts.observe("db", False)
            return self.summary
        if self.postgres and self.docker is None:
            self.restarts.observe("db", True, self.db_started_at())
        pending, review, age = oldest_pending_age(self.engine)
        m = self.metrics
        m.outbox_backlog.labels("pending").set(pending)
        m.outbox_backlog.labels("review").set(review)
        m.outbox_oldest_age.set(age)
        alert = pending + review >= self.backlog_alert
        m.outbox_alert.set(1 if alert else 0)
        m.catalog_items.set(items := catalog_size(self.engine))
        self.refresh_licence()
        state = read_state(self.engine)
        self.summary.update(outbox_pending=pending, outbox_review=review, outbox_oldest_age_seconds=int(age),
                            outbox_alert=alert, catalog_items=items, licence_status=state.licence_status,
                            last_sync_at=state.last_sync_at.isoformat() if state.last_sync_at else None)
        link = {"hq_link": self.link.state, "hq_link_since": int(self.link.since)} if self.link else {}
        self.summary.update(link)
        merge_health(self.engine, db="ok", outbox_pending=pending, outbox_review=review, outbox_alert=alert,
                     catalog_items=items, **link)
        return self.summary

    def db_started_at(self) -> float | None:
        """PostgreSQL's own start time: a new one means the database restarted."""
        with self.engine.connect() as conn:
            started = conn.execute(text("SELECT extract(epoch FROM pg_postmaster_start_time())")).scalar()
        return float(started) if started is not None else None

    def refresh_licence(self) -> None:
        """Let the clock move the licence to grace or expired (HQ-held states stay)."""
        state = read_state(self.engine)
        try:
            held = evaluate(state.licence_token or "", self.keys)
        except LicenceError:
            return
        status = combined_status(held.time_state, state.licence_status)
        self.metrics.licence_expiry.set(held.verified.claims.exp - time.time())
        self.metrics.set_licence_state(status)
        if status != state.licence_status:
            with self.engine.begin() as conn:
                update_state(conn, licence_status=status, status_reason=time_reason(held))
            log.warning("licence state changed with time", extra={"status": status})

    def observe_host(self) -> None:
        import psutil

        m = self.metrics
        ratio = psutil.cpu_percent(interval=None) / 100.0
        if self._cpu_sampled:
            m.host_cpu.set(ratio)
        self._cpu_sampled = True
        mem = psutil.virtual_memory()
        m.host_memory_total.set(mem.total)
        m.host_memory_available.set(mem.available)
        try:
            disk = psutil.disk_usage(str(self.data_path))
            m.host_disk_free.set(disk.free)
            m.host_disk_total.set(disk.total)
        except OSError:
            pass

    def observe_containers(self) -> None:
        assert self.docker is not None
        try:
            services = self.docker.services()
        except (OSError, ValueError) as exc:
            log.debug("docker socket not usable", extra={"detail": str(exc)[:120]})
            return
        for service, up in services.items():
            self.metrics.container_up.labels(service).set(1 if up else 0)


class DockerProbe:
    """Read-only look at this stack's containers through the Docker socket (GET only)."""

    MAX_SERVICES = 20  # bounds the label set

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.project: str | None = os.environ.get("KIT_COMPOSE_PROJECT")

    def services(self) -> dict[str, bool]:
        project = self.project or self._own_project()
        if not project:
            return {}
        query = json.dumps({"label": [f"com.docker.compose.project={project}"]})
        from urllib.parse import quote

        containers = self._get(f"/containers/json?all=1&filters={quote(query)}")
        out: dict[str, bool] = {}
        for c in containers[: self.MAX_SERVICES]:
            service = (c.get("Labels") or {}).get("com.docker.compose.service")
            if service:
                status = str(c.get("Status", ""))
                out[service] = c.get("State") == "running" and "unhealthy" not in status and "starting" not in status
        return out

    def _own_project(self) -> str | None:
        try:
            info = self._get(f"/containers/{socket.gethostname()}/json")
        except (OSError, ValueError):
            return None
        self.project = ((info.get("Config") or {}).get("Labels") or {}).get("com.docker.compose.project")
        return self.project

    def _get(self, path: str) -> Any:
        import http.client

        from kitcore import unixhttp

        try:
            status, body = unixhttp.get(str(self.socket_path), path)
        except http.client.HTTPException as exc:
            raise ValueError(f"docker API: {type(exc).__name__}") from None
        if status != 200:
            raise ValueError(f"docker API {status}")
        return orjson.loads(body)
