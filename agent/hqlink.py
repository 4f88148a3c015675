"""The agent's view of its path to HQ: answering, unreachable, or refusing — and how it comes back.

"Unreachable" means no HTTP answer at all (the name does not resolve, nothing listens,
the connection broke, the answer did not come in time); "refused" means HQ answered
and said no (5xx, 429, a licence it does not accept). The two call for different
waits: HQ that refuses is left alone with exponential back-off; HQ that is merely
away is probed cheaply (`GET /healthz`) every `probe_interval` seconds, and the
moment it answers every loop is woken, so work resumes within about a second
instead of after the back-off a long outage had grown.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable, Literal

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics
    from agent.transport import HttpClient

LinkState = Literal["ok", "unreachable", "refused"]
UNREACHABLE_KINDS = frozenset({"connect", "timeout"})  # no HTTP answer at all
REFUSED_KINDS = frozenset({"server", "auth"})  # HQ answered: not now, or not you

log = logging.getLogger("agent.hqlink")


def state_for(kind: str | None) -> LinkState:
    """The link state an HQ request's outcome implies (None: it was answered as asked)."""
    if kind in UNREACHABLE_KINDS:
        return "unreachable"
    if kind in REFUSED_KINDS:
        return "refused"
    return "ok"


class HQLink:
    """Shared by the agent's HQ clients; thread-safe. `on_back` runs when HQ answers again after an outage."""

    def __init__(self, metrics: "AgentMetrics | None" = None, probe_interval: float = 0.5) -> None:
        self.metrics = metrics
        self.probe_interval = probe_interval
        self.state: LinkState = "ok"
        self.since = time.time()
        self._lock = threading.Lock()
        self._outage = threading.Event()  # set while unreachable: the prober works
        self._callbacks: list[Callable[[], None]] = []
        if metrics is not None:
            metrics.set_hq_link("ok", self.since)

    def on_back(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    @property
    def unreachable(self) -> bool:
        return self.state == "unreachable"

    def report(self, kind: str | None, seconds: float) -> None:
        """One HQ request ended: `kind` is its error kind, None when HQ answered as asked."""
        new = state_for(kind)
        if new == "unreachable" and self.metrics is not None:
            self.metrics.hq_detection.set(seconds)
        self._move(new)

    def _move(self, new: LinkState) -> None:
        with self._lock:
            old = self.state
            if new == old:
                return
            self.state, self.since = new, time.time()
        if self.metrics is not None:
            self.metrics.set_hq_link(new, self.since)
            self.metrics.hq_link_changes.labels(new).inc()
        if new == "unreachable":
            log.warning("HQ unreachable: probing it every %.1fs", self.probe_interval,
                        extra={"hq_link": new})
            self._outage.set()
            return
        self._outage.clear()
        log.info("HQ answers again" if old == "unreachable" else f"HQ link {new}", extra={"hq_link": new})
        if old == "unreachable":
            for callback in self._callbacks:
                callback()

    def run_prober(self, client: "HttpClient", stop: threading.Event) -> None:
        """While HQ is unreachable, ask it for `/healthz` every `probe_interval` seconds (a thread's body)."""
        from agent.transport import TransportError

        while not stop.is_set():
            if not self._outage.wait(0.5):
                continue
            started = time.monotonic()
            try:
                client.request("GET", "/healthz")
            except TransportError:
                if self.metrics is not None:
                    self.metrics.hq_probes.labels("unreachable").inc()
            else:
                if self.metrics is not None:
                    self.metrics.hq_probes.labels("answered").inc()
                if self.unreachable:
                    self._move("ok")
                client.close()
                continue
            stop.wait(max(0.0, self.probe_interval - (time.monotonic() - started)))
