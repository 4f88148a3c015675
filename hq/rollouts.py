"""Rollouts by rings: HQ moves the fleet to a kit version one ring at a time, and stops at the first failure.

A rollout names a version (an image tag), the rings in the order they go (the
canary first: `sites.ring`, set on the fleet page) and a soak time. HQ sends
each site of the ring under way a signed `upgrade` command over the push
channel; the agent stores it and the host service (`kitctl service run`) runs
the same health-gated upgrade as `kitctl upgrade`, then reports the outcome
(`POST /v1/upgrade-report`). When every site of the ring reported the upgrade
and the soak time passed, the next ring gets its commands; a site whose
upgrade failed (its host rolled it back) halts the rollout there, before the
next ring. `advance` is idempotent and runs after every report and every
`rollout_check_seconds` in the app.

The licensee has the last word on the host (`kitctl service install --window … --no-auto-upgrade`):
the host service tells HQ its maintenance window and whether it takes automatic upgrades with every
report (`host_settings`). A site that opted out is skipped and listed, never counted as a failure; a
command that reaches a host outside its window waits there (`scheduled`, "waiting for window").
`rollback` halts a rollout and sends each site that rolled forward in it an `upgrade` command back to
the version it ran before (the host's own word in its report), through the same host service.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import or_, select

from hq import audit, commands
from hq.clock import aware, iso, utcnow
from hq.errors import ApiError
from hq.fleet_query import MAX_RING
from hq.models import Rollout, RolloutSite, Site
from kitcore.images import IMAGE_TAG

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.orm import Session

    from hq.service import HQ

MAX_SOAK_SECONDS = 7 * 86400
OPTED_OUT = "opted out of automatic upgrades"
OUTCOMES = ("upgraded", "rolled_back", "waiting", "opted_out")
AWAITING = ("sent", "scheduled")  # a command is out and its host has not reported the end of it
FINISHED = ("upgraded", "opted_out")  # the ring may go on past these
DETAIL_MAX = 300


def check_plan(version: str, rings: Sequence[int], soak_seconds: int) -> None:
    """ApiError 422 naming the first thing wrong with a rollout's version, rings or soak time."""
    if not IMAGE_TAG.match(version):
        raise ApiError(422, "invalid_request", f"version {version[:40]!r} is not an image tag")
    if not rings or len(set(rings)) != len(rings) or any(not 0 <= r <= MAX_RING for r in rings):
        raise ApiError(422, "invalid_request", f"rings: distinct rings from 0 to {MAX_RING}, at least one")
    if not 0 <= soak_seconds <= MAX_SOAK_SECONDS:
        raise ApiError(422, "invalid_request", f"soak: from 0 to {MAX_SOAK_SECONDS} seconds")


def start(hq: "HQ", operator: str, version: str, rings: Sequence[int], soak_seconds: int = 0) -> dict[str, Any]:
    """Start a rollout of `version` to the sites in `rings` (revoked ones left out); the first ring's commands
    are queued at once. One rollout runs at a time: two would fight over the same sites' versions."""
    check_plan(version, rings, soak_seconds)
    now = utcnow()
    with hq.session() as session:
        if session.scalar(select(Rollout.id).where(Rollout.state == "running").limit(1)) is not None:
            raise ApiError(409, "rollout_running", "a rollout is running: halt it first")
        members = list(session.execute(select(Site.id, Site.ring, Site.auto_upgrade).where(
            Site.ring.in_(list(rings)), Site.status != "revoked")).all())
        if not members:
            raise ApiError(422, "invalid_request", f"no site in rings {', '.join(map(str, rings))}")
        rollout = Rollout(id=str(uuid.uuid4()), version=version, rings=list(rings), soak_seconds=soak_seconds,
                          state="running", ring_index=0, created_by=operator, created_at=now, updated_at=now)
        session.add(rollout)
        session.flush()
        session.add_all([RolloutSite(rollout_id=rollout.id, site_id=site_id, ring=ring,
                                     state="waiting" if auto else "opted_out", detail=None if auto else OPTED_OUT)
                         for site_id, ring, auto in members])
        session.flush()
        audit.record(session, operator, "rollout.start", None, rollout=rollout.id, version=version,
                     rings=list(rings), soak_seconds=soak_seconds, sites=len(members),
                     opted_out=sum(1 for m in members if not m.auto_upgrade))
        _advance(session, rollout, now)
        rollout_id = rollout.id
    return status(hq, rollout_id)


def halt(hq: "HQ", operator: str, rollout_id: str, reason: str) -> dict[str, Any]:
    """Stop a running rollout where it is: no further ring gets its commands."""
    with hq.session() as session:
        rollout = _locked(session, rollout_id)
        if rollout.state != "running":
            raise ApiError(409, "rollout_not_running", f"rollout {rollout_id} is {rollout.state}")
        _stop(session, rollout, "halted", reason, utcnow(), operator)
    return status(hq, rollout_id)


def resume(hq: "HQ", operator: str, rollout_id: str) -> dict[str, Any]:
    """Go on with a halted rollout from the ring it stopped at; that ring's failed sites are sent the
    version again (the operator fixed the cause, or wants a retry). Not while another rollout runs."""
    now = utcnow()
    with hq.session() as session:
        rollout = _locked(session, rollout_id)
        if rollout.state != "halted":
            raise ApiError(409, "rollout_not_halted", f"rollout {rollout_id} is {rollout.state}")
        if session.scalar(select(Rollout.id).where(Rollout.state == "running").limit(1)) is not None:
            raise ApiError(409, "rollout_running", "another rollout is running: halt it first")
        ring = rollout.rings[rollout.ring_index]
        for member in session.scalars(select(RolloutSite).where(RolloutSite.rollout_id == rollout.id,
                                                                RolloutSite.ring == ring, RolloutSite.state == "failed")):
            member.state, member.command_id, member.detail, member.reported_at = "waiting", None, None, None
        rollout.state, rollout.reason, rollout.updated_at = "running", None, now
        audit.record(session, operator, "rollout.resume", None, rollout=rollout.id, ring=ring)
        _advance(session, rollout, now)
    return status(hq, rollout_id)


def report(hq: "HQ", site_id: str, command_id: str, version: str, outcome: str, detail: str,
           now: datetime | None = None, previous: str | None = None) -> dict[str, Any]:
    """A host's word on the upgrade command `command_id` of `site_id` (a rollout's, or a rollback's): done
    (`upgraded`, `rolled_back`), `waiting` for its maintenance window, or `opted_out`; the rollout moves on
    or halts. `previous` is the version the site ran before it (what a rollback goes back to)."""
    if outcome not in OUTCOMES:
        raise ApiError(422, "invalid_request", f"outcome: one of {', '.join(OUTCOMES)}")
    now = now or utcnow()
    with hq.session() as session:
        member = session.scalar(select(RolloutSite).where(RolloutSite.site_id == site_id, or_(
            RolloutSite.command_id == command_id, RolloutSite.rollback_command_id == command_id)))
        if member is None:
            raise ApiError(404, "not_found", "no upgrade command of this site has that id")
        rollout = _locked(session, member.rollout_id)
        member = session.get(RolloutSite, (rollout.id, site_id), populate_existing=True)
        assert member is not None
        if member.rollback_command_id == command_id:
            _rollback_report(session, member, version, outcome, detail, now)
            return {"rollout": rollout.id, "site": site_id, "state": member.rollback_state,
                    "rollout_state": rollout.state}
        if member.state in AWAITING:  # a repeated report (the host retries until it is heard) changes nothing
            _forward_report(member, rollout, version, outcome, detail, now, previous)
            audit.record(session, "hq", "rollout.report", site_id, rollout=rollout.id, outcome=outcome,
                         version=version)
        if rollout.state == "running":
            _advance(session, rollout, now)
        elif rollout.state == "rolled_back" and member.state in ("upgraded", "scheduled") \
                and member.rollback_state is None and member.previous_version:
            _send_back(session, rollout, [member])  # it rolled forward after the rollback was ordered
        return {"rollout": rollout.id, "site": site_id, "state": member.state, "rollout_state": rollout.state}


def _forward_report(member: RolloutSite, rollout: Rollout, version: str, outcome: str, detail: str,
                    now: datetime, previous: str | None) -> None:
    if previous and member.previous_version is None:
        member.previous_version = previous
    member.reported_at = now
    if outcome == "waiting":
        member.state, member.detail = "scheduled", (detail or "waiting for its maintenance window")[:DETAIL_MAX]
    elif outcome == "opted_out":
        member.state, member.detail = "opted_out", (detail or OPTED_OUT)[:DETAIL_MAX]
    else:
        upgraded = outcome == "upgraded" and version == rollout.version
        member.state = "upgraded" if upgraded else "failed"
        member.detail = (detail or ("" if upgraded else f"reported {outcome} at {version}"))[:DETAIL_MAX] or None


def _rollback_report(session: "Session", member: RolloutSite, version: str, outcome: str, detail: str,
                     now: datetime) -> None:
    """The host's word on the command that sends it back to `previous_version`."""
    if member.rollback_state not in AWAITING:
        return  # heard already
    if outcome == "waiting":
        member.rollback_state, member.rollback_detail = "scheduled", detail[:DETAIL_MAX] or None
    elif outcome == "opted_out":
        member.rollback_state, member.rollback_detail = "opted_out", (detail or OPTED_OUT)[:DETAIL_MAX]
    elif outcome == "upgraded" and version == member.previous_version:
        member.rollback_state, member.rollback_detail = "done", detail[:DETAIL_MAX] or None
    else:
        member.rollback_state = "failed"
        member.rollback_detail = (detail or f"reported {outcome} at {version}")[:DETAIL_MAX]
    member.reported_at = now
    audit.record(session, "hq", "rollout.rollback_report", member.site_id, rollout=member.rollout_id,
                 outcome=outcome, version=version)


def host_settings(hq: "HQ", site_id: str, window: str | None, auto_upgrade: bool) -> None:
    """What the site's host service says about itself: its maintenance window and whether the licensee
    lets rollouts upgrade it. Audited when it changes (the fleet page shows and filters on it)."""
    with hq.session() as session:
        site = session.get(Site, site_id)
        if site is None:
            raise ApiError(404, "not_found", "no such site")
        if (site.upgrade_window, site.auto_upgrade) != (window, auto_upgrade):
            site.upgrade_window, site.auto_upgrade = window, auto_upgrade
            audit.record(session, "hq", "site.host_settings", site_id, window=window, auto_upgrade=auto_upgrade)


def rollback(hq: "HQ", operator: str, rollout_id: str, reason: str) -> dict[str, Any]:
    """Halt the rollout for good and send each site that rolled forward in it (or may yet: its command is
    out) a signed `upgrade` command back to the version it ran before. A site whose previous version HQ
    does not know yet gets its command when its host reports it (`report`)."""
    now = utcnow()
    with hq.session() as session:
        rollout = _locked(session, rollout_id)
        if rollout.state == "rolled_back":
            raise ApiError(409, "rollout_rolled_back", f"rollout {rollout_id} is rolled back already")
        _stop(session, rollout, "rolled_back", reason or "rolled back", now, operator)
        members = session.scalars(select(RolloutSite).where(RolloutSite.rollout_id == rollout.id,
                                                            RolloutSite.state.in_(("upgraded", *AWAITING)))).all()
        for member in members:
            if member.state == "upgraded" and member.previous_version is None:
                member.rollback_state = "failed"
                member.rollback_detail = "its host did not say which version it ran before"
        _send_back(session, rollout, [m for m in members if m.previous_version is not None])
    return status(hq, rollout_id)


def _send_back(session: "Session", rollout: Rollout, members: "list[RolloutSite]") -> None:
    """Each member's command back to its previous version: one bulk enqueue per version they go back to."""
    for version in sorted({m.previous_version for m in members if m.previous_version}):
        group = [m for m in members if m.previous_version == version]
        queued = _queue_upgrades(session, [m.site_id for m in group],
                                 {"version": version, "rollout": rollout.id, "rollback": True})
        for member in group:
            sent = queued.get(member.site_id)
            if sent is None:
                member.rollback_state, member.rollback_detail = "failed", "site revoked"
            else:
                member.rollback_state, member.rollback_command_id = "sent", sent.id


def advance_all(hq: "HQ", now: datetime | None = None) -> list[str]:
    """Move every running rollout on as far as it may go now (the soak time may have passed)."""
    moment = now or utcnow()
    with hq.read() as conn:
        running = list(conn.execute(select(Rollout.id).where(Rollout.state == "running")).scalars())
    for rollout_id in running:
        with hq.session() as session:
            rollout = _locked(session, rollout_id)
            if rollout.state == "running":
                _advance(session, rollout, moment)
    return running


def status(hq: "HQ", rollout_id: str | None = None) -> dict[str, Any]:
    """One rollout (the newest without an id): its state, and each ring's sites with their state."""
    with hq.session() as session:
        query = select(Rollout).order_by(Rollout.created_at.desc()).limit(1) if rollout_id is None \
            else select(Rollout).where(Rollout.id == rollout_id)
        rollout = session.scalar(query)
        if rollout is None:
            raise ApiError(404, "not_found", "no such rollout" if rollout_id else "no rollout yet")
        members = session.execute(select(RolloutSite, Site.upgrade_window).join(Site, Site.id == RolloutSite.site_id)
                                  .where(RolloutSite.rollout_id == rollout.id)
                                  .order_by(RolloutSite.ring, RolloutSite.site_id)).all()
        current = rollout.rings[rollout.ring_index] if rollout.state == "running" else None
        sites = [{"site": m.site_id, "ring": m.ring, "state": m.state, "detail": m.detail, "window": window,
                  "reported_at": iso(m.reported_at) if m.reported_at else None, "previous": m.previous_version,
                  "rollback": m.rollback_state, "rollback_detail": m.rollback_detail} for m, window in members]
        return {"id": rollout.id, "version": rollout.version, "state": rollout.state, "reason": rollout.reason,
                "rings": rollout.rings, "current_ring": current, "soak_seconds": rollout.soak_seconds,
                "created_by": rollout.created_by, "created_at": iso(rollout.created_at), "sites": sites,
                "opted_out": [s["site"] for s in sites if s["state"] == "opted_out"],
                "waiting_for_window": [s["site"] for s in sites if s["state"] == "scheduled"],
                "failed": [s["site"] for s in sites if s["state"] == "failed"]}


def _locked(session: "Session", rollout_id: str) -> Rollout:
    rollout = session.scalar(select(Rollout).where(Rollout.id == rollout_id).with_for_update())
    if rollout is None:
        raise ApiError(404, "not_found", "no such rollout")
    return rollout


def _advance(session: "Session", rollout: Rollout, now: datetime) -> None:
    """Send the ring under way its commands, halt on a failure, or go on to the next ring once it soaked."""
    while rollout.state == "running":
        ring = rollout.rings[rollout.ring_index]
        members = session.scalars(select(RolloutSite).where(RolloutSite.rollout_id == rollout.id,
                                                            RolloutSite.ring == ring)).all()
        failed = [m for m in members if m.state == "failed"]
        if failed:
            first = failed[0]
            _stop(session, rollout, "halted", f"ring {ring}: {first.site_id} failed: {first.detail or 'no detail'}",
                  now)
            return
        _send(session, rollout, [m for m in members if m.state == "waiting"])
        if any(m.state not in FINISHED for m in members):
            return
        if rollout.ring_done_at is None:
            rollout.ring_done_at = now
        if aware(rollout.ring_done_at) + timedelta(seconds=rollout.soak_seconds) > now:
            return
        if rollout.ring_index + 1 >= len(rollout.rings):
            _stop(session, rollout, "done", None, now)
            return
        rollout.ring_index += 1
        rollout.ring_done_at = None
        rollout.updated_at = now


def _send(session: "Session", rollout: Rollout, waiting: "list[RolloutSite]") -> None:
    """The waiting sites' signed `upgrade` commands, queued in one bulk enqueue (one INSERT … SELECT, one NOTIFY:
    the push channel wakes their agents at commit); a site revoked meanwhile fails instead, and one whose
    licensee opted out meanwhile is skipped and listed."""
    if not waiting:
        return
    session.flush()
    ring = select(RolloutSite.site_id).where(RolloutSite.rollout_id == rollout.id, RolloutSite.ring == waiting[0].ring,
                                             RolloutSite.state == "waiting")
    opted = set(session.scalars(select(Site.id).where(Site.id.in_(ring), Site.auto_upgrade.is_(False))))
    for member in waiting:
        if member.site_id in opted:
            member.state, member.detail = "opted_out", OPTED_OUT
    waiting = [m for m in waiting if m.state == "waiting"]
    if not waiting:
        return
    queued = _queue_upgrades(session, ring, {"version": rollout.version, "rollout": rollout.id})
    for member in waiting:
        sent = queued.get(member.site_id)
        if sent is None:
            member.state, member.detail = "failed", "site revoked before its ring"
        else:
            member.state, member.command_id = "sent", sent.id


def _queue_upgrades(session: "Session", site_ids: "Sequence[str] | Select[Any]", payload: dict) -> dict:
    """One bulk `upgrade` command to those of the sites not revoked (a revoked site takes no command), for the
    ring going forward and for a rollback alike: site id -> the queued command."""
    session.flush()
    return commands.enqueue_many(session, Site.id.in_(site_ids) & (Site.status != "revoked"), "upgrade", payload)


def _stop(session: "Session", rollout: Rollout, state: str, reason: str | None, now: datetime,
          operator: str = "hq") -> None:
    rollout.state, rollout.reason, rollout.updated_at = state, reason[:500] if reason else None, now
    audit.record(session, operator, f"rollout.{state}", None, rollout=rollout.id, reason=reason)
