"""Staff login and the role check every admin route passes through.

The access table is the single source of truth: a route missing from it is
refused for everyone (default deny), and a test walks every route × role.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.requests import Request

from sitedb.models import AdminUser
from storefront.web import HTTPProblem, shop_of

SESSION_COOKIE = "kit_admin"
SESSION_MAX_AGE = 8 * 3600
ALL = frozenset({"admin", "operator", "finance"})

ROUTE_ROLES: dict[str, frozenset[str]] = {
    "admin_dashboard": ALL,
    "admin_logout": ALL,
    "admin_rules": frozenset({"admin", "operator"}),
    "admin_rules_submit": frozenset({"admin", "operator"}),
    "admin_rules_delete": frozenset({"admin", "operator"}),
    "admin_catalog": frozenset({"admin", "operator"}),
    "admin_orders": ALL,
    "admin_orders_csv": frozenset({"admin", "finance"}),
    "admin_revenue": frozenset({"admin", "finance"}),
    "admin_licence": frozenset({"admin", "finance"}),
    "admin_health": frozenset({"admin", "operator"}),
    "admin_users": frozenset({"admin"}),
    "admin_users_create": frozenset({"admin"}),
}


@dataclass(frozen=True)
class Staff:
    id: int
    username: str
    role: str


class LoginRequired(Exception):
    """No valid staff session: send the browser to the login page."""


def fingerprint(password_hash: str) -> str:
    """Ties a session to the current password: changing it ends every session."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def current_staff(request: Request) -> Staff | None:
    shop = shop_of(request)
    data = shop.signers.admin.loads(request.cookies.get(SESSION_COOKIE))
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return None
    with shop.sessions() as session:
        user = session.get(AdminUser, data["u"])
        if user is None or fingerprint(user.password_hash) != data.get("f"):
            return None
        return Staff(id=user.id, username=user.username, role=user.role)


def session_token(request: Request, user: AdminUser) -> str:
    return shop_of(request).signers.admin.dumps({"u": user.id, "f": fingerprint(user.password_hash)}, SESSION_MAX_AGE)


def require_role(request: Request) -> Staff:
    """Router-level dependency: the signed-in staff member, if their role may use this route."""
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    staff = current_staff(request)
    if staff is None:
        raise LoginRequired()
    if staff.role not in ROUTE_ROLES.get(name or "", frozenset()):
        raise HTTPProblem(403, "err.forbidden")
    request.state.staff = staff
    return staff


def may(staff: Staff, route_name: str) -> bool:
    """For menus: whether `staff` may open `route_name` (the route check is what enforces it)."""
    return staff.role in ROUTE_ROLES.get(route_name, frozenset())
