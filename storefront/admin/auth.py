"""Staff login and the role check every admin route passes through.

The access table is the single source of truth: a route missing from it is
refused for everyone (default deny), and a test walks every route × role.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from storefront import staff_sessions as sessions
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
    "admin_settlement": frozenset({"admin", "finance"}),  # reconciliation: finance's work, never the operator's
    "admin_settlement_statement": frozenset({"admin", "finance"}),
    "admin_settlement_pdf": frozenset({"admin", "finance"}),
    "admin_settlement_confirm": frozenset({"admin", "finance"}),
    "admin_settlement_dispute": frozenset({"admin", "finance"}),
    "admin_payouts": frozenset({"admin", "finance"}),  # withdrawals: finance's work, never the operator's
    "admin_payouts_request": frozenset({"admin", "finance"}),
    "admin_licence": frozenset({"admin", "finance"}),
    "admin_health": frozenset({"admin", "operator"}),
    "admin_grade": ALL,  # HQ's grade of the shop: every role moves some of its metrics (sales, refunds, uptime)
    "admin_coupons": frozenset({"admin", "operator"}),  # marketing: the operator's work, never finance's
    "admin_coupons_create": frozenset({"admin", "operator"}),
    "admin_coupons_disable": frozenset({"admin", "operator"}),
    "admin_coupons_enable": frozenset({"admin", "operator"}),
    "admin_users": frozenset({"admin"}),
    "admin_users_create": frozenset({"admin"}),
    "admin_users_disable": frozenset({"admin"}),
    "admin_users_enable": frozenset({"admin"}),
    "admin_users_delete": frozenset({"admin"}),
    "admin_users_reset": frozenset({"admin"}),
    "admin_audit": frozenset({"admin"}),  # the operation log: who changed what, the administrator's oversight
    "admin_audit_csv": frozenset({"admin"}),
    "admin_api_keys": frozenset({"admin"}),  # reseller API keys: who may sell through the site, the administrator's
    "admin_api_keys_create": frozenset({"admin"}),
    "admin_api_keys_rotate": frozenset({"admin"}),
    "admin_api_keys_revoke": frozenset({"admin"}),
    "admin_password": ALL,
    "admin_password_submit": ALL,
}


@dataclass(frozen=True)
class Staff:
    id: int
    username: str
    role: str


class LoginRequired(Exception):
    """No valid staff session: send the browser to the login page."""


def current_staff(request: Request) -> Staff | None:
    row = sessions.account(shop_of(request).sessions, request.cookies.get(SESSION_COOKIE))
    return Staff(id=row.id, username=row.username, role=row.role) if row else None


def start_session(request: Request, user_id: int) -> str:
    """The cookie value of a new server-side session for the account."""
    return sessions.start(shop_of(request).sessions, user_id, SESSION_MAX_AGE)


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


def least_role() -> str:
    """The role that may open the fewest routes: what a new account gets unless the admin chooses more."""
    from storefront.admin_users import ROLES

    return min(ROLES, key=lambda role: (sum(role in roles for roles in ROUTE_ROLES.values()), role))


def may(staff: Staff, route_name: str) -> bool:
    """For menus: whether `staff` may open `route_name` (the route check is what enforces it)."""
    return staff.role in ROUTE_ROLES.get(route_name, frozenset())
