"""When a timed suspension ends, as the site shows it: the `until` of the suspend command in force.

HQ sends the end of a timed suspension in the signed `suspend` command (`until`, Unix
seconds), and the agent keeps every applied command in `hq_commands`. While the site is
suspended, the suspension in force is the last applied `suspend` (a `resume` would have
ended it), so its payload says when HQ lifts it. Read, never written apart: nothing
else can overwrite it. HQ lifts the suspension itself; the site's clock decides nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from kitcore.licence.token import MAX_TIME
from sitedb.tables import hq_commands


def valid_until(value: Any) -> int | None:
    """`until` as HQ can have sent it (a positive integer of Unix seconds), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TIME:
        return value
    return None


def suspension_end(conn: Connection) -> int | None:
    """The end of the suspension in force (call it while the site is suspended); None: until HQ resumes it."""
    cmd = hq_commands.c
    payload = conn.execute(select(cmd.payload).where(cmd.type == "suspend", cmd.applied_at.is_not(None))
                           .order_by(cmd.seq.desc()).limit(1)).scalar()
    return valid_until((payload or {}).get("until")) if isinstance(payload, dict) else None
