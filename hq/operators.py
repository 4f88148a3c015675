"""HQ operators: bearer tokens shown once, stored as SHA-256 (they are 256-bit random).

Disabling an operator or rotating their token ends every fleet-page session
they have, in the same transaction, and is audited.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hq import audit
from hq.clock import iso, utcnow
from hq.models import Operator
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hq.service import HQ

NAME = re.compile(r"^[a-z][a-z0-9._-]{0,63}\Z")
PREFIX = "hqop_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add(hq: "HQ", name: str, by: str = "local") -> str:
    """Create operator `name`; returns the token (the only time it exists in clear)."""
    if not NAME.match(name):
        raise InvalidInput(f"operator name {name!r} must be lowercase letters, digits, '.', '_' or '-'")
    token = _new_token()
    try:
        with hq.session() as s:
            s.add(Operator(name=name, token_sha256=token_hash(token), created_at=utcnow()))
            audit.record(s, by, "operator.add", None, name=name)
    except IntegrityError:
        raise InvalidInput(f"operator {name!r} already exists") from None
    return token


def _new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _enabled(s: "Session", name: str) -> Operator:
    op = s.scalar(select(Operator).where(Operator.name == name))
    if op is None:
        raise InvalidInput(f"operator {name!r} does not exist")
    if op.disabled_at is not None:
        raise InvalidInput(f"operator {name!r} is already disabled")
    return op


def disable(hq: "HQ", name: str, by: str = "local") -> int:
    """Refuse `name`'s token from now on and end their sessions; returns how many sessions ended."""
    from hq.session import end_all

    with hq.session() as s:
        op = _enabled(s, name)
        op.disabled_at = utcnow()
        ended = end_all(s, op.id)
        audit.record(s, by, "operator.disable", None, name=name, sessions_ended=ended)
    return ended


def rotate(hq: "HQ", name: str, by: str = "local") -> str:
    """Give `name` a new token (the old one stops working) and end their sessions; returns the token."""
    from hq.session import end_all

    token = _new_token()
    with hq.session() as s:
        op = _enabled(s, name)
        op.token_sha256 = token_hash(token)
        ended = end_all(s, op.id)
        audit.record(s, by, "operator.rotate", None, name=name, sessions_ended=ended)
    return token


def authenticate(hq: "HQ", token: str) -> str | None:
    """The operator's name for a valid token, else None."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    with hq.session() as s:
        op = s.scalar(select(Operator).where(Operator.token_sha256 == token_hash(token)))
        if op is None or op.disabled_at is not None:
            return None
        return op.name


def list_operators(hq: "HQ") -> list[dict[str, Any]]:
    with hq.session() as s:
        return [{"name": o.name, "created_at": iso(o.created_at), "disabled": o.disabled_at is not None}
                for o in s.scalars(select(Operator).order_by(Operator.name))]
