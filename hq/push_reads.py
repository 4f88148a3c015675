"""The push channel's reads, many long-polls at a time: what `hq.sites.pending_answer` answers, in two queries.

With thousands of agents parked, HQ reads for each poll that arrives (every hold, ~25 s) and
for each one a command wakes (a fleet-wide command wakes them all at once). One thread-pool
hand-off, one pooled connection and one query per poll was most of HQ's idle CPU at 10,000
agents (docs/benchmarks.md). Here the polls that ask while a read is under way wait for it to
end and then go together: one hand-off, one query for their sites and licences, one for their
pending commands; each answer is then built and signed exactly as a single one is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import select

from hq.db import among
from hq.errors import ApiError
from hq.models import Command, Licence, Site

if TYPE_CHECKING:
    from hq.service import HQ

log = logging.getLogger("hq.push")

BATCH_MAX = 2000  # polls answered by one read; more wait for the next
PENDING_MAX = 50  # commands in one answer, as `hq.commands.pending`


class Ask(NamedTuple):
    site_id: str
    jti: str
    after: int


class PendingReads:
    """One per HQ worker, on its event loop: polls queue their ask; one read at a time answers a batch."""

    def __init__(self, hq: "HQ") -> None:
        self._hq = hq
        self._queue: list[tuple[Ask, "asyncio.Future[dict[str, Any]]"]] = []
        self._reading: "asyncio.Task[None] | None" = None  # the read under way (a reference keeps it alive)
        self.batches = 0  # reads made (tests, benchmarks)

    async def answer(self, site_id: str, jti: str, after: int) -> dict[str, Any]:
        """The site's answer as `pending_answer` gives it, read together with the other polls asking now."""
        future: "asyncio.Future[dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._queue.append((Ask(site_id, jti, after), future))
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            while self._queue:
                await asyncio.sleep(0)  # the polls woken in this same turn of the loop join the batch
                batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
                try:
                    answers = await run_in_threadpool(answer_many, self._hq, [ask for ask, _ in batch])
                except Exception as exc:  # each poll fails as its single read would have
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                for (_, future), answer in zip(batch, answers):
                    if future.done():  # the poll was cancelled (the agent hung up)
                        continue
                    if isinstance(answer, ApiError):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        finally:
            self._reading = None


def answer_many(hq: "HQ", asks: list[Ask]) -> list["dict[str, Any] | ApiError"]:
    """Each ask's answer (or the 401 its single read would raise), from two queries for all of them."""
    from hq.sites import answer

    site_ids = sorted({a.site_id for a in asks})
    with hq.read() as conn:
        sites: dict[str, Any] = {}
        known: set[tuple[str, str]] = set()
        for these in among(conn, Site.id, site_ids):
            sites.update((row.id, row) for row in conn.execute(
                select(Site.id, Site.status, Site.status_reason, Site.command_seq, Site.applied_seq, Licence.expires_at)
                .outerjoin(Licence, Licence.jti == Site.current_jti).where(these)))
        for these in among(conn, Licence.jti, sorted({a.jti for a in asks})):
            known.update((row.jti, row.site_id) for row in conn.execute(
                select(Licence.jti, Licence.site_id).where(these)))
        applied = {i: _applied(sites[a.site_id], a.after) for i, a in enumerate(asks) if a.site_id in sites}
        due = _pending(conn, {asks[i].site_id for i, seq in applied.items() if sites[asks[i].site_id].command_seq > seq})
    out: list["dict[str, Any] | ApiError"] = []
    for i, ask in enumerate(asks):
        site = sites.get(ask.site_id)
        if site is None or (ask.jti, ask.site_id) not in known:
            out.append(ApiError(401, "unknown_licence", "this licence is not known to HQ"))
            continue
        mine = [c for c in due.get(ask.site_id, ()) if c.seq > applied[i]][:PENDING_MAX]
        out.append(answer(hq, site.status, site.status_reason, site.expires_at, mine))
    return out


def _applied(site: Any, after: int) -> int:
    """As a heartbeat: HQ never hands out again what the site acknowledged, whatever `after` says."""
    return int(max(site.applied_seq, min(after, site.command_seq)))


def _pending(conn: Any, site_ids: set[str]) -> dict[str, list[Any]]:
    """The unacknowledged commands of these sites (above their acknowledged seq), oldest first, by site."""
    found: dict[str, list[Any]] = {}
    for these in among(conn, Command.site_id, sorted(site_ids)):
        rows = conn.execute(select(Command.id, Command.seq, Command.type, Command.site_id, Command.payload)
                            .join(Site, Site.id == Command.site_id)
                            .where(these, Command.seq > Site.applied_seq)
                            .order_by(Command.site_id, Command.seq))
        for row in rows:
            found.setdefault(row.site_id, []).append(row)
    return found
