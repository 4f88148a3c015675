"""Heartbeat: tell HQ we are alive and healthy, receive its interval, licence view and commands."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from sqlalchemy import Engine

from agent import VERSION
from agent.commands import CommandProcessor
from agent.hq_client import HeartbeatReply, HQClient
from agent.metrics import AgentMetrics
from agent.state import merge_health, read_state, update_state, utcnow

log = logging.getLogger("agent.heartbeat")


class Heartbeat:
    def __init__(self, engine: Engine, client: HQClient, metrics: AgentMetrics, commands: CommandProcessor,
                 health: Callable[[], dict[str, Any]],
                 emit: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.engine = engine
        self.client = client
        self.metrics = metrics
        self.commands = commands
        self.health = health
        self.emit = emit or (lambda event, payload: None)

    def body(self) -> dict[str, Any]:
        state = read_state(self.engine)
        return {"version": VERSION, "applied_seq": state.applied_seq, "health": self.health(),
                "counters": self.counters()}

    def counters(self) -> dict[str, int]:
        """Totals since the agent started (never labels with ids)."""
        out: dict[str, int] = {}
        for metric, prefix in ((self.metrics.orders_forwarded, "orders_"),
                               (self.metrics.commands_rejected, "commands_rejected_")):
            for family in metric.collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        label = next(iter(sample.labels.values()), "all")
                        out[prefix + label] = int(sample.value)
        return out

    def beat(self) -> HeartbeatReply:
        """One heartbeat; applies the commands it brings and acks them at once."""
        reply = self.client.heartbeat(self.body())
        self._record(reply)
        applied = self.commands.process(reply.commands)
        if applied:  # acknowledge now rather than one interval later
            reply = self.client.heartbeat(self.body())
            self._record(reply)
            self.commands.process(reply.commands)
        self.emit("heartbeat", {"interval_seconds": reply.interval_seconds,
                                "licence_status": reply.licence.status})
        return reply

    def _record(self, reply: HeartbeatReply) -> None:
        self.metrics.heartbeat_last_success.set(time.time())
        with self.engine.begin() as conn:
            update_state(conn, last_heartbeat_at=utcnow())
        merge_health(self.engine, hq_reachable=True, hq_unreachable_since=None,
                     hq_licence_view={"status": reply.licence.status, "reason": reply.licence.reason})

    def record_failure(self) -> None:
        state = read_state(self.engine)
        if not (state.health or {}).get("hq_unreachable_since"):
            merge_health(self.engine, hq_reachable=False, hq_unreachable_since=int(time.time()))
