"""Signed commands for sites: queued with a per-site sequence, signed on delivery.

Each delivery signs the command afresh (`iat` now, `exp` after the configured
TTL) so a site that was offline for a week still gets a command it can
verify, while its id and seq stay fixed: the agent refuses any seq it has
already applied. A heartbeat's `applied_seq` marks every command up to it done.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import JSON, DateTime, String, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from hq.clock import utcnow
from hq.models import Command, Site
from kitcore.licence.commands import COMMAND_TYPES, sign_command

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.elements import ColumnElement

    from hq.service import HQ


def lock_site(session: Session, site_id: str) -> Site | None:
    """The site row, held until commit so its command sequence (and status) change one writer at a time.

    FOR NO KEY UPDATE, not FOR UPDATE: nothing here changes the site's key, and a plain FOR UPDATE would
    wait for every open transaction that inserted an order, card key or ledger entry of the site (their
    foreign keys hold KEY SHARE on the row), and deadlocked with them on PostgreSQL."""
    return session.scalar(select(Site).where(Site.id == site_id).with_for_update(key_share=True))


def known_type(type_: str) -> None:
    """Refuse a command type the agent does not know before anything is queued."""
    if type_ not in COMMAND_TYPES:
        raise ValueError(f"unknown command type {type_!r}")


def enqueue(session: Session, site: Site, type_: str, payload: dict[str, Any]) -> Command:
    """Queue a command with the site's next sequence number (caller holds the site row: `lock_site`)."""
    known_type(type_)
    site.command_seq = (site.command_seq or 0) + 1
    cmd = Command(id=str(uuid.uuid4()), site_id=site.id, seq=site.command_seq, type=type_, payload=payload,
                  created_at=utcnow())
    session.add(cmd)
    announce(session, [site.id])
    return cmd


def enqueue_many(session: Session, which: "ColumnElement[bool]", type_: str,
                 payload: dict[str, Any]) -> dict[str, Queued]:
    """Queue one command for every site matching `which` (a condition on `Site`) in three statements
    whatever their number: the sites locked in id order, their sequences bumped and the commands
    inserted by one INSERT … SELECT, and one NOTIFY. Each command is the site's own (its id, its
    next seq), signed for that site on delivery like any other (`sign`). Returns site → (id, seq)."""
    known_type(type_)
    columns = [Command.id, Command.site_id, Command.seq, Command.type, Command.payload, Command.created_at]
    constants = (literal(type_, String()), literal(payload, JSON()), literal(utcnow(), DateTime(timezone=True)))
    if session.get_bind().dialect.name == "postgresql":
        # one statement: rows locked in a fixed order (two bulk queuings never deadlock), bumped, inserted
        locked = select(Site.id).where(which).order_by(Site.id).with_for_update(key_share=True).cte("locked")
        bumped = (update(Site).where(Site.id == locked.c.id).values(command_seq=Site.command_seq + 1)
                  .returning(Site.id, Site.command_seq).cte("bumped"))
        source = select(func.gen_random_uuid().cast(String), bumped.c.id, bumped.c.command_seq, *constants)
    else:
        # SQLite: the write transaction (BEGIN IMMEDIATE) already excludes every other writer
        session.execute(update(Site).where(which).values(command_seq=Site.command_seq + 1))
        source = select(_sqlite_uuid(), Site.id, Site.command_seq, *constants).where(which)
    rows = session.execute(insert(Command).from_select(columns, source)
                           .returning(Command.site_id, Command.id, Command.seq)).all()
    queued = {row.site_id: Queued(row.id, row.seq) for row in rows}
    announce(session, list(queued))
    return queued


class Queued(NamedTuple):
    id: str
    seq: int


def _sqlite_uuid() -> "ColumnElement[str]":
    """A random (version 4) UUID in SQL, one per row: SQLite has no function for it."""
    def part(size: int) -> "ColumnElement[str]":
        return func.lower(func.hex(func.randomblob(size)))

    return (part(4) + "-" + part(2) + "-4" + func.substr(part(2), 2) + "-"
            + func.substr("89ab", 1 + func.abs(func.random()) % 4, 1) + func.substr(part(2), 2) + "-" + part(6))


NOTIFY_SITES_MAX = 7000  # bytes of site ids in one NOTIFY (PostgreSQL's payload limit is 8000)


def announce(session: Session, site_ids: list[str]) -> None:
    """Wake the sites' push channels once this transaction commits (hq.push, hq.push_pg).

    On PostgreSQL one NOTIFY in the transaction reaches every HQ worker and instance at
    commit, and never if it rolls back: it names the sites (space-separated) when they fit,
    else it is `EVERY_SITE`. `HQ.session` wakes this process's own waiters.
    """
    from hq.push_pg import CHANNEL, EVERY_SITE
    from hq.service import QUEUED_SITES

    if not site_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        named = " ".join(site_ids)
        message = named if len(named.encode()) <= NOTIFY_SITES_MAX else EVERY_SITE
        session.execute(text("SELECT pg_notify(:channel, :sites)"), {"channel": CHANNEL, "sites": message})
    session.info.setdefault(QUEUED_SITES, set()).update(site_ids)


def acknowledge(session: "Session | Connection", site_id: str, applied_seq: int) -> None:
    session.execute(
        update(Command)
        .where(Command.site_id == site_id, Command.seq <= applied_seq, Command.acked_at.is_(None))
        .values(acked_at=utcnow())
    )


def pending(conn: "Connection", site_id: str, applied_seq: int) -> list[Any]:
    """Unacknowledged commands as rows (id, seq, type, site_id, payload), oldest first."""
    return list(conn.execute(
        select(Command.id, Command.seq, Command.type, Command.site_id, Command.payload)
        .where(Command.site_id == site_id, Command.seq > applied_seq).order_by(Command.seq).limit(50)
    ))


def sign(hq: "HQ", cmd: Any, now: int) -> str:
    """The queued command `cmd` as a token signed now, valid for the configured TTL."""
    return sign_command(hq.keys, id=cmd.id, seq=cmd.seq, type=cmd.type, site=cmd.site_id, payload=cmd.payload,
                        now=now, ttl_seconds=hq.settings.command_ttl_seconds)
