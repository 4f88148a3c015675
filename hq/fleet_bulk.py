"""Bulk actions on the fleet page's selection, in one transaction whatever its size.

Suspend, resume and sync change the selected sites in one statement each and queue their
commands with `hq.commands.enqueue_many` (one INSERT … SELECT, one NOTIFY): each site still
gets its own signed, sequenced command and its own audit event, as from its own button. A site
that refuses (already suspended, unknown) is reported with the single action's words and the
others go on. Revoke goes site by site through `hq.licences.revoke` (it also rewrites the
registry's password file). One more event (`fleet.bulk`) records the whole request: who, what,
how many, which failed. Setting the rollout ring changes only HQ's record (no command: the
site need not know its ring).

"All matching the filter" (`count_matching`, `apply_matching`) acts on every site the fleet list's
search and filters match, past the 200 a page holds: the page names the count first, the action
runs through the same bulk enqueue on a condition (no list of ids), and one `fleet.bulk` event
records the filter and the figures besides each site's own event. Revoke is left to ticked sites:
it goes one site at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import func, insert, select, update

from hq import audit, commands, fleet_query, licences
from hq.clock import utcnow
from hq.errors import ApiError
from hq.fields import SITE_ID_PATTERN
from hq.fleet_query import MAX_RING, FleetQuery, InvalidQuery
from hq.models import AuditEvent, Site

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import ColumnElement

    from hq.service import HQ

ACTIONS = ("suspend", "resume", "revoke", "sync", "ring")
MATCHING_ACTIONS = ("suspend", "resume", "sync", "ring")  # revoke goes site by site: tick the sites
MAX_MATCHING = 30_000  # ids bound in one statement (SQLite allows 32,766 parameters)
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
    skipped: int = 0  # all matching: sites the filter matched that were not in the state the action needs


def parse(action: str, selected: Sequence[str], reason: str, ring: str, matching: bool = False) -> BulkRequest:
    """Check the whole request before anything changes; InvalidQuery (400) names the first problem."""
    if action not in ACTIONS:
        raise InvalidQuery(f"action: {action[:40]!r} is not one of {', '.join(ACTIONS)}")
    if not selected and not matching:
        raise InvalidQuery("sites: select at least one site")
    if matching and action not in MATCHING_ACTIONS:
        raise InvalidQuery(f"action: {action} goes one site at a time: tick the sites (at most {MAX_SELECTION})")
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
    return BulkRequest(action, () if matching else tuple(selected), reason.strip(), number)


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


def count_matching(hq: "HQ", query: FleetQuery) -> int:
    """How many sites the list's search and filters match (what the confirmation names)."""
    ids = fleet_query.matching(query, hq.engine.dialect.name, utcnow())
    with hq.read() as conn:
        return int(conn.execute(select(func.count()).select_from(ids.subquery())).scalar_one())


def apply_matching(hq: "HQ", operator: str, request: BulkRequest, query: FleetQuery) -> BulkOutcome:
    """The action on every site matching `query`, in one transaction: suspend, resume and sync through
    one bulk enqueue on the condition, ring by one UPDATE; each site its own audit event, and one
    `fleet.bulk` event with the filter. Sites not in the state the action needs are counted as skipped."""
    outcome = BulkOutcome()
    with hq.session() as s:
        # the ids read once: PostgreSQL planned `IN (the filter's join)` inside the locking CTE and the UPDATE
        # as nested loops (8 s each at 3,000 sites, fresh statistics or not); a list of ids is an index probe each
        matched_ids = sorted(s.scalars(fleet_query.matching(query, s.get_bind().dialect.name, utcnow())))
        if len(matched_ids) > MAX_MATCHING:
            raise InvalidQuery(f"scope: the filter matches {len(matched_ids)} sites; at most {MAX_MATCHING} at once")
        matched = len(matched_ids)
        chosen = Site.id.in_(matched_ids)
        if request.action == "ring":
            outcome.done = matched_ids
            s.execute(update(Site).where(chosen).values(ring=request.ring))
            events = [{"at": utcnow(), "operator": operator, "action": "site.ring", "site_id": site,
                       "detail": {"ring": request.ring, "bulk": True}} for site in outcome.done]
        else:
            needed = BATCHED[request.action]
            if needed is not None:
                chosen = chosen & (Site.status == needed) & Site.current_jti.is_not(None)
            type_, payload, action, detail = _command_of(request, operator)
            # queued while the condition still holds; the rows stay locked (PostgreSQL) or the database is
            # this transaction's alone (SQLite), so the state change below hits the very same sites
            queued = commands.enqueue_many(s, chosen, type_, payload)
            _set_state(s, request, chosen, detail)
            outcome.done = sorted(queued)
            events = [{"at": utcnow(), "operator": operator, "action": action, "site_id": site,
                       "detail": {**detail, "seq": queued[site].seq, "bulk": True}} for site in outcome.done]
        if events:
            s.execute(insert(AuditEvent), events)
        outcome.skipped = matched - len(outcome.done)
        audit.record(s, operator, "fleet.bulk", None, bulk_action=request.action, scope="matching",
                     filter=query.link(page=1), count=matched, done=len(outcome.done), skipped=outcome.skipped,
                     ring=request.ring)
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
    found = _command_of(request, operator)
    _set_state(s, request, chosen, found[3])
    return found


def _command_of(request: BulkRequest, operator: str) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """The action's (command type, payload, audit action, audit detail)."""
    if request.action == "suspend":
        reason = request.reason or f"suspended by {operator}"
        return "suspend", {"reason": reason}, "licence.suspend", {"reason": reason, "until": None}
    if request.action == "resume":
        return "resume", {}, "licence.resume", {}
    return "sync_now", {}, "site.sync_now", {}


def _set_state(s: "Session", request: BulkRequest, chosen: "ColumnElement[bool]", detail: dict[str, Any]) -> None:
    if request.action == "suspend":
        s.execute(update(Site).where(chosen).values(status="suspended", status_reason=detail["reason"],
                                                    suspended_until=None))
    elif request.action == "resume":
        s.execute(update(Site).where(chosen).values(status="active", status_reason=None, suspended_until=None))


def _set_ring(hq: "HQ", operator: str, request: BulkRequest, outcome: BulkOutcome) -> None:
    with hq.session() as s:
        for site in request.sites:
            changed = s.execute(update(Site).where(Site.id == site).values(ring=request.ring)).rowcount
            if changed:
                audit.record(s, operator, "site.ring", site, ring=request.ring)
                outcome.done.append(site)
            else:
                outcome.failed[site] = f"site {site!r} does not exist"
