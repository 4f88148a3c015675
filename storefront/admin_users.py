"""Staff accounts: `kitctl` creates the first admin at deploy time with a generated password.

`create_admin(url, username)` returns the password once; only its argon2
hash is stored. Also used by `python -m storefront create-admin NAME`.
Admins disable, enable, delete and reset accounts; everyone changes their own
password. Each change is audited and ends the account's sessions in the
same transaction; the last enabled admin can be neither disabled nor deleted.
"""

from __future__ import annotations

import re

from kitcore.errors import InvalidInput

ROLES = ("admin", "operator", "finance")
MIN_PASSWORD = 12
USERNAME = re.compile(r"^[A-Za-z0-9._-]{3,32}\Z")


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


def _account(session, user_id: int):  # type: ignore[no-untyped-def]
    from sitedb.models import AdminUser

    user = session.get(AdminUser, user_id)
    if user is None:
        raise AdminUserError("no such account")
    return user


def _keep_an_admin(session, user) -> None:  # type: ignore[no-untyped-def]
    """Refuse to leave the site without an enabled admin (nobody could manage accounts)."""
    from sqlalchemy import func, select

    from sitedb.models import AdminUser

    if user.role != "admin" or user.disabled_at is not None:
        return
    others = session.scalar(select(func.count()).select_from(AdminUser).where(
        AdminUser.role == "admin", AdminUser.disabled_at.is_(None), AdminUser.id != user.id))
    if not others:
        raise AdminUserError("the last enabled admin cannot be disabled or deleted")


def _changed(session, user, actor: str, action: str) -> None:  # type: ignore[no-untyped-def]
    from sitedb.models import AuditEntry
    from storefront.staff_sessions import end_all

    ended = end_all(session, user.id)
    session.add(AuditEntry(actor=actor, action=action, detail={"username": user.username, "sessions_ended": ended}))


def disable_user(session, user_id: int, actor: str) -> str:  # type: ignore[no-untyped-def]
    """Disable the account and end its sessions; returns its username."""
    from sitedb.tables import utcnow

    user = _account(session, user_id)
    if user.disabled_at is None:
        _keep_an_admin(session, user)
        user.disabled_at = utcnow()
    _changed(session, user, actor, "admin_user_disabled")
    return str(user.username)


def enable_user(session, user_id: int, actor: str) -> str:  # type: ignore[no-untyped-def]
    from sitedb.models import AuditEntry

    user = _account(session, user_id)
    user.disabled_at = None
    session.add(AuditEntry(actor=actor, action="admin_user_enabled", detail={"username": user.username}))
    return str(user.username)


def delete_user(session, user_id: int, actor: str) -> str:  # type: ignore[no-untyped-def]
    """Delete the account (its sessions first); returns its username."""
    user = _account(session, user_id)
    _keep_an_admin(session, user)
    _changed(session, user, actor, "admin_user_deleted")
    session.delete(user)
    return str(user.username)


def reset_password(session, user_id: int, actor: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A new generated password for the account (shown once); its sessions end. Returns (username, password)."""
    from storefront.passwords import generate_password, hash_password

    user = _account(session, user_id)
    password = generate_password()
    user.password_hash = hash_password(password)
    _changed(session, user, actor, "admin_user_password_reset")
    return str(user.username), password


def change_password(session, user_id: int, current: str, new: str, repeat: str) -> None:  # type: ignore[no-untyped-def]
    """The account owner's own change: the current password must verify; every session ends (log in again)."""
    from storefront.passwords import hash_password, verify_password

    user = _account(session, user_id)
    if not verify_password(user.password_hash, current[:256]):
        raise AdminUserError("current")
    if len(new) < MIN_PASSWORD or len(new) > 256:
        raise AdminUserError("length")
    if new != repeat:
        raise AdminUserError("mismatch")
    user.password_hash = hash_password(new)
    _changed(session, user, "admin:" + user.username, "admin_user_password_changed")


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
