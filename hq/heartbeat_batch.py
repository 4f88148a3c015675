"""Gather the heartbeats that arrive while the database is busy into one batch.

Each worker records beats through one `BeatBatcher`. A beat arriving when
fewer than `max_in_flight` batches are running goes out at once (a batch of
one: no added wait); otherwise it waits for the next batch, which takes
everything queued by then (one beat per site; a second beat of the same site
waits for the batch after). Under load the cost of a round trip and a
statement is shared by many beats; when idle nothing changes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from hq.clock import utcnow
from hq.heartbeat_pg import Beat, BeatIn

if TYPE_CHECKING:
    from datetime import datetime

log = logging.getLogger("hq")

Recorder = Callable[[Sequence[BeatIn], "datetime"], Awaitable[dict[str, Beat]]]


class BeatBatcher:
    def __init__(self, recorder: Recorder, max_batch: int = 100, max_in_flight: int = 2) -> None:
        self.recorder, self.max_batch, self.max_in_flight = recorder, max_batch, max_in_flight
        self._queue: list[tuple[BeatIn, asyncio.Future[Beat | None]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done, as asyncio asks
        self.batches = 0  # how many batches ran (for tests and benchmarks)
        self.beats = 0

    async def record(self, beat: BeatIn) -> Beat | None:
        """The site's state after this beat; None when the licence is not the site's."""
        future: asyncio.Future[Beat | None] = asyncio.get_running_loop().create_future()
        self._queue.append((beat, future))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            task = asyncio.ensure_future(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take(self) -> list[tuple[BeatIn, "asyncio.Future[Beat | None]"]]:
        """Up to `max_batch` queued beats of distinct sites, oldest first; the rest stay queued."""
        batch, sites, rest = [], set(), []
        for item in self._queue:
            if item[1].done():  # the caller went away (client disconnected)
                continue
            if len(batch) < self.max_batch and item[0].site_id not in sites:
                batch.append(item)
                sites.add(item[0].site_id)
            else:
                rest.append(item)
        self._queue = rest
        return batch

    async def _drain(self) -> None:
        try:
            while batch := self._take():
                await self._run(batch)
        finally:
            self._in_flight -= 1

    async def _run(self, batch: list[tuple[BeatIn, "asyncio.Future[Beat | None]"]]) -> None:
        try:
            done = await self.recorder([beat for beat, _ in batch], utcnow())
        except BaseException as exc:  # every waiting request answers with the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("HQ is stopping"))
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.beats += len(batch)
        for beat, future in batch:
            if not future.done():
                future.set_result(done.get(beat.site_id))
