"""Is each container of the stack up, and did it restart? Answered without the Docker socket.

The agent shares the stack's network, so it asks each service what the service's own
healthcheck asks (`/healthz` over HTTP) and reads the database's liveness from its own
`SELECT 1`. A restart shows as a new start time where the service reports one (the
storefront's `/healthz` does, PostgreSQL's `pg_postmaster_start_time()` does), and
otherwise as an answer after a failed probe. A Docker socket, when one is mounted,
still gives the engine's own view (`stats.DockerProbe`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.transport import HttpClient, TransportError

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics

MAX_SERVICES = 20  # bounds the `service` label
SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
DEFAULT_PROBES = "storefront=http://storefront:8000/healthz,proxy=http://proxy:8081/healthz"


def parse_probes(spec: str) -> dict[str, str]:
    """`name=url,name=url` → {name: url}; raises ValueError naming the bad part."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, url = part.partition("=")
        if not sep or not SERVICE_NAME.match(name.strip()) or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"KIT_STACK_PROBES: {part[:60]!r} is not service=http://host:port/path")
        out[name.strip()] = url.strip()
    if len(out) > MAX_SERVICES:
        raise ValueError(f"KIT_STACK_PROBES: at most {MAX_SERVICES} services")
    return out


@dataclass
class ServiceSeen:
    """What the agent last saw of one service."""

    up: bool | None = None
    started_at: float | None = None


@dataclass
class RestartTracker:
    """Turns successive observations into the up gauge and the restarts counter."""

    metrics: "AgentMetrics"
    seen: dict[str, ServiceSeen] = field(default_factory=dict)

    def observe(self, service: str, up: bool, started_at: float | None = None) -> None:
        last = self.seen.setdefault(service, ServiceSeen())
        self.metrics.container_up.labels(service).set(1 if up else 0)
        self.metrics.container_restarts.labels(service)  # the series exists from the first look
        restarted = False
        if up and started_at is not None and last.started_at is not None:
            restarted = started_at != last.started_at
        elif up:
            restarted = last.up is False  # no start times to compare: an answer after a failure
        if restarted:
            self.metrics.container_restarts.labels(service).inc()
        last.up = up
        if up and started_at is not None:
            last.started_at = started_at


class StackProbes:
    """HTTP probes of the stack's services, each bounded by a short timeout."""

    def __init__(self, probes: dict[str, str], tracker: RestartTracker, timeout: float = 1.5) -> None:
        self.tracker = tracker
        self.clients = {name: (HttpClient(_origin(url), timeout=timeout), _path(url)) for name, url in probes.items()}

    def run(self) -> None:
        for name, (client, path) in self.clients.items():
            up, started = probe(client, path)
            self.tracker.observe(name, up, started)

    def close(self) -> None:
        for client, _ in self.clients.values():
            client.close()


def probe(client: HttpClient, path: str) -> tuple[bool, float | None]:
    """(answered 2xx, the start time the service reported if any)."""
    try:
        resp = client.request("GET", path)
    except (TransportError, OSError):
        return False, None
    finally:
        client.close()  # one probe every few seconds: no connection is kept open between them
    if not 200 <= resp.status_code < 300:
        return False, None
    return True, _started_at(resp.content)


def _started_at(body: bytes) -> float | None:
    import orjson

    try:
        doc: Any = orjson.loads(body)
    except ValueError:
        return None
    value = doc.get("started_at") if isinstance(doc, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}"


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return (u.path or "/") + (f"?{u.query}" if u.query else "")
