"""Wake long-polls across HQ workers and instances: PostgreSQL LISTEN/NOTIFY.

`hq.commands.enqueue` sends `NOTIFY kitctl_commands, '<site id>'` inside the
transaction that queues the command, so PostgreSQL delivers it to every
listening session only once the command is committed and readable. Each
worker keeps one listening connection (asyncpg, like its heartbeat pool).
When that connection is lost the worker reconnects with a bounded back-off
and then wakes every waiter, since notifications sent meanwhile are gone:
each re-reads the database, so nothing is missed; agents' heartbeats carry
commands in the meantime anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hq.push import PushHub

CHANNEL = "kitctl_commands"
EVERY_SITE = "*"  # a notification naming no site (too many to list): each worker checks its waiters' sequences
APPLICATION_NAME = "kitctl-hq-push"  # how the listening sessions show in pg_stat_activity
PING_SECONDS = 15.0  # a listening connection that died silently is noticed within this
RETRY_CAP_SECONDS = 10.0

log = logging.getLogger("hq.push")


async def listen(hub: "PushHub", url: str, check: "Callable[[], Awaitable[None]]", connect_seconds: float,
                 ping_seconds: float = PING_SECONDS) -> None:
    """Run for ever (cancel to stop): keep a LISTEN connection and wake the hub on each notification.

    A notification names its sites (space-separated); one that names none (`EVERY_SITE`, a command
    queued for more sites than fit) runs `check`: one read of the waiting sites' sequences."""
    import asyncpg

    from hq.heartbeat_pg import dsn

    failures = 0
    while True:
        conn: Any = None
        try:
            conn = await asyncpg.connect(dsn(url), timeout=connect_seconds, command_timeout=5,
                                         server_settings={"application_name": APPLICATION_NAME})
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, sites: _woken(hub, sites, check))
            if failures:
                log.info("push: listening again")
            failures = 0
            hub.wake_all()  # what was queued while nobody listened
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), timeout=ping_seconds)
                except asyncio.TimeoutError:
                    await conn.execute("SELECT 1")
            raise ConnectionError("the listening connection was closed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection refused, dropped, timed out: try again
            failures += 1
            if failures == 1:
                log.warning("push: listening connection lost; retrying", extra={"detail": str(exc)[:160]})
        finally:
            if conn is not None:
                conn.terminate()
        await asyncio.sleep(min(RETRY_CAP_SECONDS, 0.2 * 2 ** min(failures, 6)))


_CHECKS: set["asyncio.Future[None]"] = set()  # checks under way (the loop keeps only weak references)


def _woken(hub: "PushHub", sites: str, check: "Callable[[], Awaitable[None]]") -> None:
    if sites == EVERY_SITE:
        task = asyncio.ensure_future(check())
        _CHECKS.add(task)
        task.add_done_callback(_CHECKS.discard)
    else:
        hub.wake_each(sites.split(" "))
