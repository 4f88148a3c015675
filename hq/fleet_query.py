"""The fleet page's site list at 10,000 sites: search, filters, sort and paging done by the database.

Every parameter is checked before a query is built (`parse`; a bad one is a 400 naming it),
sorts come from a fixed list of indexed columns, pages are bounded, and the search matches the
*start* of a site id, domain or licensee name, with the user's text taken literally (no
wildcards): a prefix is what an index can serve on both databases (PostgreSQL `LIKE 'x%'`
on a `varchar_pattern_ops` index, SQLite `GLOB 'x*'` on a plain one; migration 0014).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import urlencode

from sqlalchemy import and_, func, or_, select, text

from hq.clock import aware, iso, utcnow
from hq.errors import ApiError
from hq.fields import SITE_ID_PATTERN
from hq.fleet_alerts import KINDS
from hq.licences import licence_state_of
from hq.models import FleetAlert, Licence, Order, Site, SiteDay

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.elements import ColumnElement

    from hq.service import HQ

STATES = ("active", "suspended", "revoked", "expired")
TIERS = ("basic", "pro", "flagship")
SORTS = ("site", "heartbeat", "version", "expires", "ring", "state")
PAGE_SIZES = (25, 50, 100, 200)
UPGRADES = ("auto", "opted_out")
MAX_PAGE = 10_000
MAX_SEARCH = 100
MAX_RING = 99
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
PAGE_KEYS = ("msg", "error", "lang")  # the page's own parameters, not the list's


class InvalidQuery(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, "invalid_query", detail)


@dataclass(frozen=True)
class FleetQuery:
    q: str = ""
    state: str = ""
    tier: str = ""
    version: str = ""
    alert: str = ""  # "" | "any" | an alert kind
    ring: str = ""  # "" | "none" | 0..99
    upgrades: str = ""  # "" | "auto" | "opted_out": what the site's host service told HQ
    sort: str = "site"
    order: str = "asc"
    page: int = 1
    size: int = 50

    def link(self, **changes: Any) -> str:
        """This list's query string with `changes`, leaving out defaults (the page's links and forms)."""
        wanted = replace(self, **changes)
        default = FleetQuery()
        pairs = [(k, str(getattr(wanted, k))) for k in FIELDS if getattr(wanted, k) != getattr(default, k)]
        return "?" + urlencode(pairs) if pairs else "?"


FIELDS = tuple(FleetQuery.__dataclass_fields__)


def parse(params: Sequence[tuple[str, str]]) -> FleetQuery:
    """A FleetQuery from the request's query pairs, or InvalidQuery naming the first bad one."""
    seen: dict[str, str] = {}
    for key, value in params:
        if key not in FIELDS and key not in PAGE_KEYS:
            raise InvalidQuery(f"{key[:40]}: not a parameter of the fleet page")
        if key in seen:
            raise InvalidQuery(f"{key}: given more than once")
        seen[key] = value
    values = {k: v for k, v in seen.items() if k in FIELDS}
    return FleetQuery(
        q=_search(values.get("q", "")), state=_choice("state", values.get("state", ""), STATES),
        tier=_choice("tier", values.get("tier", ""), TIERS), version=_version(values.get("version", "")),
        alert=_choice("alert", values.get("alert", ""), ("any", *KINDS)), ring=_ring(values.get("ring", "")),
        upgrades=_choice("upgrades", values.get("upgrades", ""), UPGRADES),
        sort=_choice("sort", values.get("sort", "site"), SORTS) or "site",
        order=_choice("order", values.get("order", "asc"), ("asc", "desc")) or "asc",
        page=_integer("page", values.get("page", "1"), 1, MAX_PAGE),
        size=int(_choice("size", values.get("size", "50"), tuple(str(s) for s in PAGE_SIZES)) or 50))


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value and value not in allowed:
        raise InvalidQuery(f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}")
    return value


def _search(value: str) -> str:
    text = value.strip()
    if len(text) > MAX_SEARCH:
        raise InvalidQuery(f"q: at most {MAX_SEARCH} characters")
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
        raise InvalidQuery("q: control characters are not allowed")
    return text


def _version(value: str) -> str:
    if value and not re.fullmatch(VERSION_PATTERN, value):
        raise InvalidQuery(f"version: {value[:40]!r} is not a version like 0.3.1")
    return value


def _ring(value: str) -> str:
    if value in ("", "none"):
        return value
    return str(_integer("ring", value, 0, MAX_RING))


def _integer(name: str, value: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", value) or not low <= int(value) <= high:
        raise InvalidQuery(f"{name}: {value[:40]!r} is not a whole number from {low} to {high}")
    return int(value)


# -- the query -------------------------------------------------------------------

def _prefix(column: Any, text: str, dialect: str) -> "ColumnElement[bool]":
    """`column` starts with `text`, taken literally, in a form the column's index serves."""
    if dialect == "postgresql":
        escaped = re.sub(r"([\\%_])", r"\\\1", text)
        return column.like(escaped + "%", escape="\\")
    escaped = re.sub(r"([*?\[])", r"[\1]", text)  # GLOB's wildcards as one-character classes
    return column.op("GLOB")(escaped + "*")


def _conditions(query: FleetQuery, dialect: str, now: datetime) -> list[Any]:
    out: list[Any] = []
    if query.q:
        lower = query.q.lower()
        out.append(or_(_prefix(Site.id, lower, dialect), _prefix(Site.domain, lower, dialect),
                       _prefix(Site.licensee, query.q, dialect)))
    if query.state in ("suspended", "revoked"):
        out.append(Site.status == query.state)
    elif query.state == "active":
        out.append(and_(Site.status == "active", Site.licence_expires_at > now))
    elif query.state == "expired":
        out.append(and_(Site.status == "active", Site.licence_expires_at <= now))
    if query.tier:
        out.append(Licence.tier == query.tier)
    if query.version:
        out.append(Site.version == query.version)
    if query.ring == "none":
        out.append(Site.ring.is_(None))
    elif query.ring:
        out.append(Site.ring == int(query.ring))
    if query.upgrades:
        out.append(Site.auto_upgrade.is_(query.upgrades == "auto"))
    if query.alert:  # the sites of the open alerts (a few), not a probe per site
        firing = [FleetAlert.state == "firing"] + ([FleetAlert.kind == query.alert] if query.alert != "any" else [])
        out.append(Site.id.in_(select(FleetAlert.site_id).where(*firing)))
    return out


def _order(query: FleetQuery) -> list[Any]:
    column = {"site": Site.id, "heartbeat": Site.last_heartbeat_at, "version": Site.version,
              "expires": Site.licence_expires_at, "ring": Site.ring, "state": Site.status}[query.sort]
    key = column.desc() if query.order == "desc" else column.asc()
    tie = Site.id.desc() if query.order == "desc" else Site.id.asc()
    return [key.nulls_last(), tie] if query.sort != "site" else [key]


@dataclass(frozen=True)
class FleetPage:
    query: FleetQuery
    rows: list[dict[str, Any]]
    total: int
    summary: dict[str, int] = field(default_factory=dict)  # the whole fleet's cards (`_summary`)
    versions: list[str] = field(default_factory=list)  # the version filter's choices (`_versions`)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.size))


def statements(query: FleetQuery, dialect: str, now: datetime) -> tuple[Any, Any]:
    """(the page's rows, how many match in all): what `fetch` runs, and what the index tests explain.

    The page's ids are picked first from `sites` alone (an index walk, joined to the licence
    only for the tier filter: the expiry is the site's own `licence_expires_at`), then only those
    rows are read in full: a deep page skips index entries, not joined rows.
    """
    conditions = _conditions(query, dialect, now)
    joined = (Licence, Licence.jti == Site.current_jti)
    needs_licence = bool(query.tier)
    ids = select(Site.id).where(*conditions).order_by(*_order(query)).limit(query.size)\
        .offset((query.page - 1) * query.size)
    count = select(func.count()).select_from(Site).where(*conditions)
    if needs_licence:
        ids, count = ids.outerjoin(*joined), count.outerjoin(*joined)
    today = (SiteDay, and_(SiteDay.site_id == Site.id, SiteDay.day == now.date()))  # its primary key: one probe a row
    rows = select(*COLUMNS, SiteDay.orders.label("orders_today")).outerjoin(*joined).outerjoin(*today)\
        .where(Site.id.in_(ids.scalar_subquery())).order_by(*_order(query))
    return rows, count


def matching(query: FleetQuery, dialect: str, now: datetime) -> Any:
    """Every site matching the list's search and filters (no sort, no page): the ids "all matching" acts on."""
    ids = select(Site.id).where(*_conditions(query, dialect, now))
    if query.state in ("active", "expired") or query.tier:
        ids = ids.outerjoin(Licence, Licence.jti == Site.current_jti)
    return ids


COLUMNS = (Site.id, Site.licensee, Site.domain, Site.ring, Site.status, Site.status_reason, Site.last_heartbeat_at,
           Site.version, Site.health, Licence.tier, Licence.categories, Licence.expires_at, Site.auto_upgrade,
           Site.upgrade_window)


def fetch(hq: "HQ", query: FleetQuery) -> FleetPage:
    """One page of sites matching `query`, how many match in all, the fleet's cards and versions.

    One connection and as few statements as the page allows: on a busy host each statement is a
    wait for PostgreSQL's turn on a core, which is what a page's latency followed. The fleet's own
    count is the list's total when nothing filters it.
    """
    now = utcnow()
    rows_sql, count_sql = statements(query, hq.engine.dialect.name, now)
    online = timedelta(seconds=3 * hq.settings.heartbeat_interval_seconds)
    with hq.read() as conn:
        cards = _summary(conn, now, online)
        filtered = bool(_conditions(query, hq.engine.dialect.name, now))
        total = conn.execute(count_sql).scalar_one() if filtered else cards["sites"]
        rows = conn.execute(rows_sql).all()
        ids = [row.id for row in rows]
        reviews = dict(conn.execute(select(Order.site_id, func.count())
                                    .where(Order.status == "review", Order.site_id.in_(ids))
                                    .group_by(Order.site_id)).all()) if ids else {}
        choices = _versions(conn)
    out = [_row(row, now, online, int(row.orders_today or 0), int(reviews.get(row.id, 0))) for row in rows]
    return FleetPage(query, out, int(total), cards, choices)


def _row(row: Any, now: datetime, online: timedelta, orders_today: int, reviews: int) -> dict[str, Any]:
    return {
        "site": row.id, "licensee": row.licensee, "domain": row.domain, "ring": row.ring,
        "status": licence_state_of(row.status, row.expires_at, now) if row.expires_at else row.status,
        "reason": row.status_reason, "tier": row.tier, "categories": list(row.categories or []),
        "expires_at": iso(row.expires_at), "last_heartbeat_at": iso(row.last_heartbeat_at),
        "online": bool(row.last_heartbeat_at and now - aware(row.last_heartbeat_at) < online),
        "version": row.version, "health": row.health or {}, "orders_today": orders_today, "reviews": reviews,
        "auto_upgrade": row.auto_upgrade, "window": row.upgrade_window,
    }


# The distinct versions by a skip scan of ix_sites_version: one index probe per version, where
# `SELECT DISTINCT` read all 10,000 index entries (2.3 ms of PostgreSQL's CPU on every page load).
VERSIONS = text("""
WITH RECURSIVE v(version) AS (
    SELECT min(version) FROM sites
    UNION ALL
    SELECT (SELECT min(s.version) FROM sites s WHERE s.version > v.version) FROM v WHERE v.version IS NOT NULL
)
SELECT version FROM v WHERE version IS NOT NULL LIMIT :limit""")


def _versions(conn: "Connection", limit: int = 50) -> list[str]:
    """The versions the fleet reports (the version filter's choices), in order."""
    return [v for (v,) in conn.execute(VERSIONS, {"limit": limit})]


def _summary(conn: "Connection", now: datetime, online: timedelta) -> dict[str, int]:
    """The whole fleet's figures for the page's cards, in one statement (no per-site rows)."""
    orders = select(func.coalesce(func.sum(SiteDay.orders), 0)).where(SiteDay.day == now.date()).scalar_subquery()
    sites, live, today = conn.execute(select(func.count(), func.count().filter(Site.last_heartbeat_at > now - online),
                                             orders).select_from(Site)).one()
    return {"sites": int(sites), "online": int(live or 0), "orders_today": int(today)}


def valid_site(site: str) -> bool:
    return bool(re.fullmatch(SITE_ID_PATTERN, site))
