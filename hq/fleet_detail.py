"""One site's page: its state and history (licences, commands and whether they were applied,
versions it reported, alerts, operators' actions), each list bounded and newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hq import audit
from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.fleet_alerts import alert_json
from hq.licences import licence_state_of
from hq.models import Command, FleetAlert, Licence, Site, SiteVersion

if TYPE_CHECKING:
    from hq.service import HQ

HISTORY = 100


def detail(hq: "HQ", site_id: str) -> dict[str, Any]:
    """Everything the site page shows; 404 for a site HQ does not know."""
    with hq.session() as s:
        site = s.get(Site, site_id)
        if site is None:
            raise ApiError(404, "not_found", f"site {site_id!r} does not exist")
        lics = list(s.scalars(select(Licence).where(Licence.site_id == site_id)
                              .order_by(Licence.issued_at.desc()).limit(HISTORY)))
        lics.sort(key=lambda lic: lic.jti != site.current_jti)  # the current first (tokens' times are whole seconds)
        current = lics[0] if lics and lics[0].jti == site.current_jti else None
        cmds = list(s.scalars(select(Command).where(Command.site_id == site_id)
                              .order_by(Command.seq.desc()).limit(HISTORY)))
        versions = list(s.scalars(select(SiteVersion).where(SiteVersion.site_id == site_id)
                                  .order_by(SiteVersion.id.desc()).limit(HISTORY)))
        alerts = [alert_json(a) for a in s.scalars(select(FleetAlert).where(FleetAlert.site_id == site_id)
                                                   .order_by(FleetAlert.opened_at.desc()).limit(HISTORY))]
        return {
            "site": site.id, "licensee": site.licensee, "domain": site.domain, "ring": site.ring,
            "status": licence_state_of(site.status, current.expires_at, utcnow()) if current else site.status,
            "reason": site.status_reason, "suspended_until": iso(site.suspended_until),
            "tier": current.tier if current else None, "version": site.version,
            "last_heartbeat_at": iso(site.last_heartbeat_at), "created_at": iso(site.created_at),
            "command_seq": site.command_seq, "applied_seq": site.applied_seq,
            "licences": [{"jti": lic.jti, "tier": lic.tier, "categories": list(lic.categories),
                          "issued_at": iso(lic.issued_at), "expires_at": iso(lic.expires_at),
                          "issued_by": lic.issued_by, "revoked_at": iso(lic.revoked_at),
                          "current": lic.jti == site.current_jti} for lic in lics],
            "commands": [{"seq": c.seq, "type": c.type, "created_at": iso(c.created_at), "acked_at": iso(c.acked_at),
                          "detail": _command_detail(c.payload)} for c in cmds],
            "versions": [{"version": v.version, "seen_at": iso(v.seen_at)} for v in versions],
            "alerts": alerts,
            "audit": audit.recent(s, limit=HISTORY, site_id=site_id),
        }


def _command_detail(payload: dict[str, Any]) -> str:
    """What a command said, for people: its reason; never a token it carries."""
    return str(payload.get("reason") or "")[:200]
