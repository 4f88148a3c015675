"""Support bundles on request: HQ sends a signed `support_bundle` command, the site's agent uploads
its redacted bundle, the operator downloads it from the fleet page."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hq import audit, commands
from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.models import SupportBundle

if TYPE_CHECKING:
    from hq.service import HQ

MAX_BUNDLE_BYTES = 1024 * 1024  # HQ's request body limit (KIT_HQ_MAX_BODY_BYTES default); an agent's bundle is tens of KB


def bundle_dir(hq: "HQ") -> Path:
    path = hq.settings.dir / "support-bundles"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def request(hq: "HQ", operator: str, site_id: str) -> dict[str, Any]:
    """Queue the signed command; the bundle arrives with the site's next heartbeat and upload."""
    with hq.session() as s:
        site = commands.lock_site(s, site_id)
        if site is None:
            raise ApiError(404, "not_found", f"site {site_id!r} does not exist")
        request_id = str(uuid.uuid4())
        cmd = commands.enqueue(s, site, "support_bundle", {"request_id": request_id})
        s.add(SupportBundle(id=request_id, site_id=site_id, requested_by=operator, requested_at=utcnow()))
        audit.record(s, operator, "site.support_bundle", site_id, seq=cmd.seq, request_id=request_id)
    return {"site": site_id, "request_id": request_id, "seq": cmd.seq}


def receive(hq: "HQ", site_id: str, request_id: str, body: bytes) -> dict[str, Any]:
    """Store the site's upload for a request HQ made to that site (once)."""
    if len(body) > MAX_BUNDLE_BYTES:
        raise ApiError(413, "too_large", f"a support bundle is at most {MAX_BUNDLE_BYTES} bytes")
    digest = hashlib.sha256(body).hexdigest()
    with hq.session() as s:
        row = s.get(SupportBundle, request_id, with_for_update=True)
        if row is None or row.site_id != site_id:
            raise ApiError(404, "not_found", "no support bundle was requested with this id")
        if row.received_at is not None:
            raise ApiError(409, "already_received", "this support bundle was uploaded already")
        target = bundle_dir(hq) / f"{request_id}.tar.gz"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        row.received_at, row.size_bytes, row.sha256 = utcnow(), len(body), digest
        audit.record(s, "site", "site.support_bundle_received", site_id, request_id=request_id, bytes=len(body))
    return {"request_id": request_id, "bytes": len(body), "sha256": digest}


def listing(hq: "HQ", limit: int = 50) -> list[dict[str, Any]]:
    with hq.read() as conn:  # plain rows: the fleet page reads this on every load
        return [{"id": b.id, "site": b.site_id, "requested_by": b.requested_by, "requested_at": iso(b.requested_at),
                 "received_at": iso(b.received_at), "size_bytes": b.size_bytes}
                for b in conn.execute(select(SupportBundle).order_by(SupportBundle.requested_at.desc()).limit(limit))]


def archive(hq: "HQ", request_id: str) -> tuple[Path, str]:
    """The stored archive and the site it came from; 404 until it arrived."""
    with hq.session() as s:
        row = s.get(SupportBundle, request_id) if len(request_id) <= 36 else None
        if row is None or row.received_at is None:
            raise ApiError(404, "not_found", "no such support bundle (or it has not arrived yet)")
        return bundle_dir(hq) / f"{request_id}.tar.gz", row.site_id
