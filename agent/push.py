"""The push channel: one long-poll held open to HQ, so HQ's commands take effect in about a second.

HQ answers the long-poll (`GET /v1/commands/wait`) the moment a command for
this site is queued, or after `wait` seconds with none; the agent then asks
again at once. The commands it brings are the heartbeat's signed envelopes and
go through the same `CommandProcessor` (signature, site, expiry, sequence),
so nothing about what is accepted changes: the channel only makes delivery
prompt. The heartbeat still carries every pending command at its interval,
which is the fallback while the channel is down; after applying, the agent
beats at once so HQ sees the acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from agent.commands import CommandProcessor
    from agent.hq_client import HQClient
    from agent.metrics import AgentMetrics

@dataclass(frozen=True)
class PushOutcome:
    """One long-poll: how many commands it brought and how many were applied."""

    received: int
    applied: int

    @property
    def stalled(self) -> bool:
        """HQ handed out commands and none could be applied: asking again at once would spin."""
        return self.received > 0 and self.applied == 0


class PushChannel:
    def __init__(self, client: "HQClient", commands: "CommandProcessor", metrics: "AgentMetrics", wait: int,
                 on_applied: Callable[[], None]) -> None:
        self.client = client
        self.commands = commands
        self.metrics = metrics
        self.wait = wait
        self.on_applied = on_applied
        self.in_flight = False  # a long-poll is open (or being opened) right now

    def once(self) -> PushOutcome:
        """Hold one long-poll and apply what it brings; HQError when HQ could not be asked."""
        self.in_flight = True
        try:
            reply = self.client.wait_commands(self.commands.applied_seq(), self.wait)
        except Exception:
            self.metrics.push_connected.set(0)
            raise
        finally:
            self.in_flight = False
        self.metrics.push_connected.set(1)
        applied = self.commands.process(reply.commands)
        if applied:
            self.on_applied()
        return PushOutcome(len(reply.commands), applied)
