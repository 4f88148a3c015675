"""Staff accounts: `kitctl` creates the first admin at deploy time with a generated password.

`create_admin(url, username)` returns the password once; only its argon2
hash is stored. Also used by `python -m storefront create-admin NAME`.
"""

from __future__ import annotations

import re

from kitcore.errors import InvalidInput

ROLES = ("admin", "operator", "finance")
USERNAME = re.compile(r"^[A-Za-z0-9._-]{3,32}$")


class AdminUserError(InvalidInput):
    """A one-line reason the account was not created (nothing was written); kitctl shows it as `error: ...`, exit 2."""


def validate_username(username: str) -> str:
    if not USERNAME.match(username):
        raise AdminUserError("username must be 3-32 letters, digits, dots, dashes or underscores")
    return username


def create_user(session, username: str, role: str, actor: str) -> str:  # type: ignore[no-untyped-def]
    """Add a staff account in the caller's transaction; returns its generated password."""
    from sqlalchemy import select

    from sitedb.models import AdminUser, AuditEntry
    from storefront.passwords import generate_password, hash_password

    validate_username(username)
    if role not in ROLES:
        raise AdminUserError(f"role must be one of {', '.join(ROLES)}")
    if session.scalar(select(AdminUser.id).where(AdminUser.username == username)) is not None:
        raise AdminUserError(f"user {username!r} already exists")
    password = generate_password()
    session.add(AdminUser(username=username, role=role, password_hash=hash_password(password)))
    session.add(AuditEntry(actor=actor, action="admin_user_created", detail={"username": username, "role": role}))
    return password


def create_admin(url: str, username: str, role: str = "admin", migrate: bool = True) -> str:
    """Create a staff account in the site database at `url`; returns the password (shown once, never stored)."""
    from sqlalchemy.exc import IntegrityError

    from sitedb.engine import make_engine, session_factory
    from sitedb.migrate import upgrade

    validate_username(username)
    if migrate:
        upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as session:
            return create_user(session, username, role, actor="kitctl")
    except IntegrityError:
        raise AdminUserError(f"user {username!r} already exists") from None
    finally:
        engine.dispose()


def create_first_admin(url: str, username: str) -> str | None:
    """The first admin of a database that has none (whatever kitctl's marker on the host says); None if it has one.

    Checked and created in one transaction, so two deploys racing create one admin.
    """
    from sqlalchemy import select

    from sitedb.engine import make_engine, session_factory
    from sitedb.migrate import upgrade
    from sitedb.models import AdminUser

    validate_username(username)
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as session:
            if session.scalar(select(AdminUser.id).where(AdminUser.role == "admin").limit(1)) is not None:
                return None
            return create_user(session, username, "admin", actor="kitctl")
    finally:
        engine.dispose()

