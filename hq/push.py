"""The push channel's waiting room: agents' long-polls park here until a command for their site is queued.

One `PushHub` per HQ worker process, living on its event loop. A long-poll
registers a waiter for its site, reads the database, and if nothing is pending
sleeps until `wake(site)` or its time is up; it then reads again. What wakes
it does not need to be exact: a wake with nothing new only costs one read.

Wakes come from three places: a command queued in this process
(`HQ.on_commands`, thread-safe), PostgreSQL's NOTIFY from any HQ worker or
instance (`hq.push_pg`), and on SQLite a poller of the sites' command
sequence (`poll_sqlite`), which also sees commands queued by `kitctl hq` in
another process.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from hq.service import HQ

log = logging.getLogger("hq.push")


@dataclass(eq=False)
class Waiter:
    """One parked long-poll: its site, the sequence it has seen, and what wakes it."""

    site_id: str
    after: int
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, seconds: float) -> bool:
        """True when woken, False when `seconds` passed first.

        A timer that ends the wait rather than `asyncio.wait_for`, which wraps the wait in a task of its
        own: every long-poll parks here, and a fleet-wide command wakes them all at once."""
        if self.event.is_set():
            return True
        timed_out = False

        def time_up() -> None:
            nonlocal timed_out
            timed_out = not self.event.is_set()
            self.event.set()

        timer = asyncio.get_running_loop().call_later(max(seconds, 0.0), time_up)
        try:
            await self.event.wait()
        finally:
            timer.cancel()
        if timed_out:
            self.event.clear()
        return not timed_out


class PushHub:
    """The waiters of one worker, by site. Everything but `wake_threadsafe` runs on the loop."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[Waiter]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self.wakes = 0  # how many waiters were woken (benchmarks, tests)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @contextmanager
    def waiting(self, site_id: str, after: int) -> Iterator[Waiter]:
        """Register before reading the database, so a command committed in between still wakes it."""
        waiter = Waiter(site_id, after)
        self._waiters.setdefault(site_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            peers = self._waiters.get(site_id)
            if peers is not None:
                peers.discard(waiter)
                if not peers:
                    del self._waiters[site_id]

    def wake(self, site_id: str) -> None:
        for waiter in self._waiters.get(site_id, ()):
            waiter.event.set()
            self.wakes += 1

    def wake_all(self) -> None:
        """After a gap in notifications (the listener reconnected): everyone reads again."""
        for site_id in list(self._waiters):
            self.wake(site_id)

    def wake_threadsafe(self, site_ids: "set[str] | list[str]") -> None:
        """From any thread (a request's transaction committed commands for these sites)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.wake_each, list(site_ids))  # one hand-off, however many sites

    def wake_each(self, site_ids: list[str]) -> None:
        for site_id in site_ids:
            self.wake(site_id)

    def close(self) -> None:
        """HQ is stopping: every long-poll answers now, so shutdown does not wait out their holds."""
        self.closing = True
        self.wake_all()

    def close_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.close)

    def waiting_sites(self) -> dict[str, int]:
        """Each waiting site with the lowest sequence one of its waiters has seen."""
        return {site: min(w.after for w in waiters) for site, waiters in self._waiters.items() if waiters}

    @property
    def waiting_count(self) -> int:
        return sum(len(w) for w in self._waiters.values())


SQLITE_POLL_SECONDS = 1.0


async def poll_sqlite(hub: PushHub, hq: "HQ", every: float = SQLITE_POLL_SECONDS) -> None:
    """SQLite has no NOTIFY: wake the sites whose command sequence passed what their waiters have seen.

    One small read per `every` for the whole worker, whatever the number of waiters; it catches
    commands queued by another process (`kitctl hq`, another worker). Commands queued in this
    process wake their waiters at once, without waiting for this.
    """
    while True:
        await asyncio.sleep(every)
        await wake_advanced(hub, hq)


async def wake_advanced(hub: PushHub, hq: "HQ") -> None:
    """Wake the waiters whose site's command sequence passed what they have seen: one read for all of them
    (the SQLite poller's round, and a NOTIFY that names no site: a command queued for too many to list)."""
    from starlette.concurrency import run_in_threadpool

    waiting = hub.waiting_sites()
    if not waiting:
        return
    try:
        seqs = await run_in_threadpool(command_seqs, hq, list(waiting))
    except Exception:  # the waiters' own timeouts still answer them
        log.exception("push: reading command sequences failed")
        return
    for site_id, seq in seqs.items():
        if seq > waiting.get(site_id, seq):
            hub.wake(site_id)


def command_seqs(hq: "HQ", site_ids: list[str]) -> dict[str, int]:
    from sqlalchemy import select

    from hq.models import Site

    from hq.db import among

    seqs: dict[str, int] = {}
    with hq.read() as conn:
        for these in among(conn, Site.id, site_ids):
            seqs.update((row.id, row.command_seq) for row in conn.execute(select(Site.id, Site.command_seq).where(these)))
    return seqs
