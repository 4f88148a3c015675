"""The heartbeat's bookkeeping on PostgreSQL: one statement on this worker's asyncpg pool.

A heartbeat is HQ's most frequent request (every site, every interval), so on
PostgreSQL it skips the SQLAlchemy transaction of `hq.sites.heartbeat` (BEGIN,
lock-and-read, update, COMMIT: four round trips from a worker thread) and
runs one autocommitted statement from the event loop: it proves the caller's
licence is this site's, records the beat (locking the site row), marks
acknowledged commands done and returns what the answer needs. Only a site
with commands still pending costs a second (read-only) statement.

asyncpg rather than psycopg here because it costs about a third of the CPU
per query (measured: 70 µs against 200 µs for psycopg's async connection on
the same machine), and a heartbeat is little more than one query. The rest of
HQ keeps SQLAlchemy. The semantics are those of `hq.sites.heartbeat`, which
SQLite uses; the HQ tests run every heartbeat test against both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncpg import Pool

# The UPDATE locks the site row, so concurrent beats of one site apply one after the
# other, each to the newest row. Marking commands done is idempotent (`acked_at IS NULL`),
# so it needs no "did applied_seq move" test. $1 site, $2 jti, $3 at, $4 version,
# $5 health, $6 counters (JSON text), $7 the beat's applied_seq.
BEAT_SQL = """
WITH beat AS (
    UPDATE sites SET last_heartbeat_at = $3, version = $4, health = $5::json, counters = $6::json,
                     applied_seq = GREATEST(applied_seq, LEAST($7::int, command_seq))
    WHERE id = $1 AND EXISTS (SELECT 1 FROM licences l WHERE l.jti = $2 AND l.site_id = $1)
    RETURNING status, status_reason, command_seq, applied_seq, current_jti
), ack AS (
    UPDATE commands SET acked_at = $3 FROM beat
    WHERE commands.site_id = $1 AND commands.seq <= beat.applied_seq AND commands.acked_at IS NULL
)
SELECT beat.status, beat.status_reason, beat.command_seq, beat.applied_seq,
       (SELECT l.expires_at FROM licences l WHERE l.jti = beat.current_jti) AS expires_at
FROM beat
"""

PENDING_SQL = """
SELECT id, seq, type, site_id, payload::text AS payload FROM commands
WHERE site_id = $1 AND seq > $2 ORDER BY seq LIMIT 50
"""


@dataclass(frozen=True)
class Beat:
    """The site's state after the beat: what the answer is built from."""

    status: str
    reason: str | None
    expires_at: datetime | None
    pending: list["Command"]  # unacknowledged commands, oldest first


@dataclass(frozen=True)
class Command:
    """A queued command as `hq.commands.sign` reads it."""

    id: str
    seq: int
    type: str
    site_id: str
    payload: dict[str, Any]


def dsn(url: str) -> str:
    """libpq's spelling of a SQLAlchemy PostgreSQL URL (`postgresql+psycopg://…`)."""
    scheme, _, rest = url.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgres") else url


async def open_pool(url: str, size: int = 4) -> "Pool":
    """This worker's pool (connections are made lazily up to `size`).

    A connection goes back to the pool without asyncpg's reset query (a round trip per
    use): these statements autocommit and leave no session state behind.
    """
    import asyncpg

    return await asyncpg.create_pool(dsn(url), min_size=0, max_size=size, max_inactive_connection_lifetime=0,
                                     reset=_nothing_to_reset)


async def _nothing_to_reset(_conn: Any) -> None:
    return None


async def record(pool: "Pool", site_id: str, jti: str, at: datetime, version: str,
                 health_json: str, counters_json: str, applied_seq: int) -> Beat | None:
    """Record one beat; None when the licence `jti` is not this site's (or the site is unknown)."""
    import asyncpg

    args = (site_id, jti, at, version, health_json, counters_json, applied_seq)
    try:
        return await _record(pool, args)
    except (asyncpg.ConnectionDoesNotExistError, asyncpg.CannotConnectNowError, ConnectionError):
        # a pooled connection the server dropped (e.g. a restart); the pool replaces it
        return await _record(pool, args)  # recording a beat twice is harmless


async def _record(pool: "Pool", args: tuple[Any, ...]) -> Beat | None:
    import json

    async with pool.acquire() as conn:
        row = await conn.fetchrow(BEAT_SQL, *args)
        if row is None:
            return None
        pending: list[Command] = []
        if row["command_seq"] > row["applied_seq"]:
            rows = await conn.fetch(PENDING_SQL, args[0], row["applied_seq"])
            pending = [Command(r["id"], r["seq"], r["type"], r["site_id"], json.loads(r["payload"])) for r in rows]
    return Beat(row["status"], row["status_reason"], row["expires_at"], pending)
