"""Bulk actions on the fleet page's selection, in one transaction whatever its size.

Suspend, resume and sync change the selected sites in one statement each and queue their
commands with `hq.commands.enqueue_many` (one INSERT … SELECT, one NOTIFY): each site still
gets its own signed, sequenced command and its own audit event, as from its own button. A site
that refuses (already suspended, unknown) is reported with the single action's words and the
others go on. Revoke goes site by site through `hq.licences.revoke` (it also rewrites the
registry's password file). One more event (`fleet.bulk`) records the whole request: who, what,
how many, which failed. Setting the rollout ring changes only HQ's record (no command: the
site need not know its ring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import insert, select, update

from hq import audit, commands, licences
from hq.clock import utcnow
from hq.errors import ApiError
from hq.fields import SITE_ID_PATTERN
from hq.fleet_query import MAX_RING, InvalidQuery
from hq.models import AuditEvent, Site

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import ColumnElement

    from hq.service import HQ

ACTIONS = ("suspend", "resume", "revoke", "sync", "ring")
MAX_SELECTION = 200  # the largest page: a selection is made on one page


@dataclass(frozen=True)
class BulkRequest:
    action: str
    sites: tuple[str, ...]
    reason: str = ""
    ring: int | None = None


@dataclass
class BulkOutcome:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def parse(action: str, selected: Sequence[str], reason: str, ring: str) -> BulkRequest:
    """Check the whole request before anything changes; InvalidQuery (400) names the first problem."""
    if action not in ACTIONS:
        raise InvalidQuery(f"action: {action[:40]!r} is not one of {', '.join(ACTIONS)}")
    if not selected:
        raise InvalidQuery("sites: select at least one site")
    if len(selected) > MAX_SELECTION:
        raise InvalidQuery(f"sites: at most {MAX_SELECTION} at a time")
    bad = [s for s in selected if not re.fullmatch(SITE_ID_PATTERN, s)]
    if bad:
        raise InvalidQuery(f"sites: {bad[0][:70]!r} is not a site id")
    if len(set(selected)) != len(selected):
        raise InvalidQuery("sites: a site is selected twice")
    if len(reason) > 500 or any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
        raise InvalidQuery("reason: one line of at most 500 characters")
    number: int | None = None
    if action == "ring" and ring != "none":
        if not re.fullmatch(r"[0-9]{1,2}", ring) or int(ring) > MAX_RING:
            raise InvalidQuery(f"ring: {ring[:20]!r} is not a ring from 0 to {MAX_RING} (or none)")
        number = int(ring)
    return BulkRequest(action, tuple(selected), reason.strip(), number)


def apply(hq: "HQ", operator: str, request: BulkRequest) -> BulkOutcome:
    """Act on every selected site; returns which were done and why the others were not."""
    outcome = BulkOutcome()
    if request.action == "ring":
        _set_ring(hq, operator, request, outcome)
    elif request.action in BATCHED:
        _batched(hq, operator, request, outcome)
    else:
        for site in request.sites:
            try:
                _one(hq, operator, request, site)
                outcome.done.append(site)
            except ApiError as exc:
                outcome.failed[site] = exc.detail
    with hq.session() as s:
        audit.record(s, operator, "fleet.bulk", None, bulk_action=request.action, count=len(request.sites),
                     done=len(outcome.done), failed=outcome.failed, ring=request.ring)
    return outcome


def _one(hq: "HQ", operator: str, request: BulkRequest, site: str) -> None:
    licences.revoke(hq, operator, site, request.reason or "revoked by HQ")


BATCHED = {"suspend": "active", "resume": "suspended", "sync": None}  # action → the state a site must be in


def _batched(hq: "HQ", operator: str, request: BulkRequest, outcome: BulkOutcome) -> None:
    """Suspend, resume or sync every eligible selected site: their rows held in id order, one UPDATE,
    one bulk enqueue, one INSERT of audit events."""
    needed = BATCHED[request.action]
    with hq.session() as s:
        rows = s.execute(select(Site.id, Site.status, Site.current_jti).where(Site.id.in_(request.sites))
                         .order_by(Site.id).with_for_update(key_share=True)).all()
        found = {row.id: row for row in rows}
        for site in request.sites:
            row = found.get(site)
            if row is None:
                outcome.failed[site] = f"site {site!r} does not exist"
            elif needed is not None and row.status != needed:
                outcome.failed[site] = f"site {site!r} is {row.status}, not {needed}"
            elif needed is not None and row.current_jti is None:
                outcome.failed[site] = f"site {site!r} has no current licence"
            else:
                outcome.done.append(site)
        if not outcome.done:
            return
        chosen = Site.id.in_(outcome.done)
        type_, payload, action, detail = _change(s, request, operator, chosen)
        queued = commands.enqueue_many(s, chosen, type_, payload)
        s.execute(insert(AuditEvent), [{"at": utcnow(), "operator": operator, "action": action, "site_id": site,
                                        "detail": {**detail, "seq": queued[site].seq, "bulk": True}}
                                       for site in outcome.done])


def _change(s: "Session", request: BulkRequest, operator: str,
            chosen: "ColumnElement[bool]") -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """Change the chosen sites' state for the action; its (command type, payload, audit action, audit detail)."""
    if request.action == "suspend":
        reason = request.reason or f"suspended by {operator}"
        s.execute(update(Site).where(chosen).values(status="suspended", status_reason=reason, suspended_until=None))
        return "suspend", {"reason": reason}, "licence.suspend", {"reason": reason, "until": None}
    if request.action == "resume":
        s.execute(update(Site).where(chosen).values(status="active", status_reason=None, suspended_until=None))
        return "resume", {}, "licence.resume", {}
    return "sync_now", {}, "site.sync_now", {}


def _set_ring(hq: "HQ", operator: str, request: BulkRequest, outcome: BulkOutcome) -> None:
    with hq.session() as s:
        for site in request.sites:
            changed = s.execute(update(Site).where(Site.id == site).values(ring=request.ring)).rowcount
            if changed:
                audit.record(s, operator, "site.ring", site, ring=request.ring)
                outcome.done.append(site)
            else:
                outcome.failed[site] = f"site {site!r} does not exist"
