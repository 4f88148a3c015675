"""Reseller API keys: made, rotated and revoked by the site's admin; checked on every API call.

A key is `kit_<id>_<secret>`: the id names it (in the audit log, in the admin),
the secret is 32 random bytes shown once and stored only as its SHA-256 (a
random secret needs no slow hash). Rotating keeps the id and scopes and
replaces the secret (the old one stops at once); revoking ends the key.
Each change is audited in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from kitcore.errors import InvalidInput
from sitedb.tables import api_keys, audit_log

SCOPES = ("catalog:read", "orders:write", "orders:read")
NAME = re.compile(r"^[A-Za-z0-9 ._-]{1,64}\Z")
TOKEN = re.compile(r"^kit_([a-f0-9]{12})_([A-Za-z0-9_-]{43})\Z")


class KeyRefused(InvalidInput):
    """A one-line reason the key was not made or changed (nothing written)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _audit(conn: Connection, actor: str, action: str, **detail: object) -> None:
    conn.execute(insert(audit_log).values(actor=actor[:64], action=action, detail=detail,
                                          at=datetime.now(timezone.utc)))


def create(conn: Connection, name: str, scopes: list[str], actor: str) -> tuple[str, str]:
    """A new key; returns (id, token). The token is shown once and never stored."""
    name = name.strip()
    if not NAME.match(name):
        raise KeyRefused("name: 1-64 letters, digits, spaces, dots, dashes or underscores")
    chosen = sorted(set(scopes))
    if not chosen or any(s not in SCOPES for s in chosen):
        raise KeyRefused(f"scopes: one or more of {', '.join(SCOPES)}")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    conn.execute(insert(api_keys).values(id=key_id, name=name, secret_sha256=_digest(secret), scopes=chosen,
                                         created_at=datetime.now(timezone.utc)))
    _audit(conn, actor, "api_key_created", key=key_id, name=name, scopes=chosen)
    return key_id, f"kit_{key_id}_{secret}"


def rotate(conn: Connection, key_id: str, actor: str) -> str:
    """A new secret for a live key (the old one stops now); returns the new token."""
    secret = secrets.token_urlsafe(32)
    changed = conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                           .values(secret_sha256=_digest(secret))).rowcount
    if changed != 1:
        raise LookupError(key_id)
    _audit(conn, actor, "api_key_rotated", key=key_id)
    return f"kit_{key_id}_{secret}"


def revoke(conn: Connection, key_id: str, actor: str) -> None:
    changed = conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                           .values(revoked_at=datetime.now(timezone.utc))).rowcount
    if changed != 1:
        raise LookupError(key_id)
    _audit(conn, actor, "api_key_revoked", key=key_id)


def listing(conn: Connection) -> list[dict[str, object]]:
    rows = conn.execute(select(api_keys.c.id, api_keys.c.name, api_keys.c.scopes, api_keys.c.created_at,
                               api_keys.c.revoked_at, api_keys.c.last_used_at).order_by(api_keys.c.created_at))
    return [dict(r._mapping) for r in rows]


def verify(conn: Connection, token: str) -> ApiKey | None:
    """The live key a token belongs to, or None (malformed, unknown, revoked, or a rotated-out secret)."""
    found = TOKEN.match(token or "")
    if not found:
        return None
    row = conn.execute(select(api_keys).where(api_keys.c.id == found.group(1))).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_sha256, _digest(found.group(2))):
        return None
    conn.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=datetime.now(timezone.utc)))
    return ApiKey(row.id, row.name, tuple(row.scopes or ()))
