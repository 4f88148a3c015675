"""Bulk actions on the fleet page's selection: the single-site actions, applied site by site.

Each site goes through the same function as its own button (`hq.licences`, `hq.sites`), so
each gets its own signed, sequenced command and its own audit event; one more event
(`fleet.bulk`) records the whole request: who, what, how many, which failed. A site that
refuses (already suspended, unknown) is reported and the others go on. Setting the rollout
ring changes only HQ's record (no command: the site need not know its ring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from sqlalchemy import update

from hq import audit, licences, sites as site_ops
from hq.errors import ApiError
from hq.fields import SITE_ID_PATTERN
from hq.fleet_query import MAX_RING, InvalidQuery
from hq.models import Site

if TYPE_CHECKING:
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
    if request.action == "suspend":
        licences.suspend(hq, operator, site, request.reason or f"suspended by {operator}")
    elif request.action == "resume":
        licences.resume(hq, operator, site)
    elif request.action == "revoke":
        licences.revoke(hq, operator, site, request.reason or "revoked by HQ")
    else:
        site_ops.sync_now(hq, operator, site)


def _set_ring(hq: "HQ", operator: str, request: BulkRequest, outcome: BulkOutcome) -> None:
    with hq.session() as s:
        for site in request.sites:
            changed = s.execute(update(Site).where(Site.id == site).values(ring=request.ring)).rowcount
            if changed:
                audit.record(s, operator, "site.ring", site, ring=request.ring)
                outcome.done.append(site)
            else:
                outcome.failed[site] = f"site {site!r} does not exist"
