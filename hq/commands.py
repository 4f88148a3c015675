"""Signed commands for sites: queued with a per-site sequence, signed on delivery.

Each delivery signs the command afresh (`iat` now, `exp` after the configured
TTL) so a site that was offline for a week still gets a command it can
verify, while its id and seq stay fixed: the agent refuses any seq it has
already applied. A heartbeat's `applied_seq` marks every command up to it done.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from hq.clock import utcnow
from hq.models import Command, Site
from kitcore.licence.commands import COMMAND_TYPES, sign_command

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hq.service import HQ


def lock_site(session: Session, site_id: str) -> Site | None:
    """The site row, held until commit so its command sequence (and status) change one writer at a time.

    FOR NO KEY UPDATE, not FOR UPDATE: nothing here changes the site's key, and a plain FOR UPDATE would
    wait for every open transaction that inserted an order, card key or ledger entry of the site (their
    foreign keys hold KEY SHARE on the row), and deadlocked with them on PostgreSQL."""
    return session.scalar(select(Site).where(Site.id == site_id).with_for_update(key_share=True))


def enqueue(session: Session, site: Site, type_: str, payload: dict[str, Any]) -> Command:
    """Queue a command with the site's next sequence number (caller holds the site row: `lock_site`)."""
    if type_ not in COMMAND_TYPES:
        raise ValueError(f"unknown command type {type_!r}")
    site.command_seq = (site.command_seq or 0) + 1
    cmd = Command(id=str(uuid.uuid4()), site_id=site.id, seq=site.command_seq, type=type_, payload=payload,
                  created_at=utcnow())
    session.add(cmd)
    announce(session, site.id)
    return cmd



def announce(session: Session, site_id: str) -> None:
    """Wake the site's push channel once this transaction commits (hq.push, hq.push_pg).

    On PostgreSQL a NOTIFY in the transaction reaches every HQ worker and instance at
    commit, and never if it rolls back; `HQ.session` wakes this process's own waiters.
    """
    from hq.push_pg import CHANNEL
    from hq.service import QUEUED_SITES

    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :site)"), {"channel": CHANNEL, "site": site_id})
    session.info.setdefault(QUEUED_SITES, set()).add(site_id)


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
