"""The sub-site owner's admin: roles enforced on every route by one table (ROUTE_ROLES)."""
