"""`python -m storefront staff list | create NAME [ROLE] | reset-password NAME | disable NAME`.

The container-side end of `kitctl admin …` (run with docker exec inside the
running storefront): the same functions the admin web UI uses
(storefront.admin_users), acting as `host` in the audit log. Passwords are
printed once on stdout and never stored; errors are one line on stderr, exit 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

ACTOR = "host"
USAGE = "usage: python -m storefront staff list | create NAME [ROLE] | reset-password NAME | disable NAME"


def main(args: list[str]) -> int:
    from storefront.admin_users import AdminUserError
    from storefront.settings import StorefrontSettings

    command = _command(args)
    if command is None:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        url = StorefrontSettings().resolved_database_url()
        print(command(url))
    except (AdminUserError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _command(args: list[str]) -> Callable[[str], str] | None:
    from storefront.admin_users import ROLES

    if args == ["list"]:
        return list_staff
    if len(args) in (2, 3) and args[0] == "create" and (len(args) == 2 or args[2] in ROLES):
        return lambda url: create_staff(url, args[1], args[2] if len(args) == 3 else "admin")
    if len(args) == 2 and args[0] == "reset-password":
        return lambda url: _by_name(url, args[1], lambda s, uid: _reset(s, uid))
    if len(args) == 2 and args[0] == "disable":
        return lambda url: _by_name(url, args[1], lambda s, uid: f"disabled {_disable(s, uid)}")
    return None


def list_staff(url: str) -> str:
    """Every staff account as JSON (no password hashes)."""
    from sqlalchemy import select

    from sitedb.models import AdminUser

    def rows(session: Any) -> str:
        users = session.scalars(select(AdminUser).order_by(AdminUser.username)).all()
        return json.dumps([{"username": u.username, "role": u.role, "disabled": u.disabled_at is not None}
                           for u in users])

    return _in_session(url, rows)


def create_staff(url: str, username: str, role: str) -> str:
    from storefront.admin_users import create_user

    return _in_session(url, lambda session: create_user(session, username, role, actor=ACTOR))


def _reset(session: Any, user_id: int) -> str:
    from storefront.admin_users import reset_password

    return reset_password(session, user_id, ACTOR)[1]


def _disable(session: Any, user_id: int) -> str:
    from storefront.admin_users import disable_user

    return disable_user(session, user_id, ACTOR)


def _by_name(url: str, username: str, act: Callable[[Any, int], str]) -> str:
    from sqlalchemy import select

    from sitedb.models import AdminUser
    from storefront.admin_users import AdminUserError

    def run(session: Any) -> str:
        user_id = session.scalar(select(AdminUser.id).where(AdminUser.username == username))
        if user_id is None:
            raise AdminUserError(f"no account {username!r}")
        return act(session, user_id)

    return _in_session(url, run)


def _in_session(url: str, work: Callable[[Any], str]) -> str:
    """One transaction on the site database (migrated first: the storefront may be older than the schema)."""
    from sitedb.engine import make_engine, session_factory
    from sitedb.migrate import upgrade

    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as session:
            return work(session)
    finally:
        engine.dispose()
