"""The risk engine: rules are data (`<hq_dir>/risk-rules.json`), the engine applies them.

Operators edit the JSON file (or PUT /v1/admin/risk-rules); HQ reloads it when
it changes. Each rule that fires adds a reason and an action; the decision is
the strongest action: reject > review > approve. Velocity counts orders HQ
received (HQ's clock, not the site's) for the same buyer account, contact or
IP across all sites within the window.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from hq.clock import aware
from hq.db import one_of
from hq.fields import MAX_CENTS, Account, Contact, IpNetwork, Region, integer, unique
from hq.models import Order, Site, SiteDay
from kitcore.errors import InvalidInput

Action = Literal["review", "reject"]
log = logging.getLogger("hq.risk")
SEVERITY = {"approve": 0, "review": 1, "reject": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Documented bounds: an order carries at most 10,000 units and MAX_CENTS, so no limit needs more.
Cents = integer(0, MAX_CENTS)
PositiveCents = integer(1, MAX_CENTS)
Quantity = integer(1, 10_000)
OrderCount = integer(1, 10_000_000)
MAX_BLOCKED = 1000  # entries per block list: a rules document, not a fraud database


class AmountLimits(_Strict):
    review_amount_cents: Cents = 100_000  # type: ignore[valid-type]
    reject_amount_cents: Cents = 1_000_000  # type: ignore[valid-type]
    review_quantity: Quantity = 20  # type: ignore[valid-type]
    reject_quantity: Quantity = 100  # type: ignore[valid-type]


class VelocityRule(_Strict):
    key: Literal["account", "contact", "ip"]
    window_seconds: integer(1, 30 * 86400)  # type: ignore[valid-type]
    max_orders: OrderCount  # type: ignore[valid-type]
    action: Action = "review"


def _block_list(item: object) -> object:
    return Annotated[list[item], Field(max_length=MAX_BLOCKED, json_schema_extra={"uniqueItems": True}),  # type: ignore[valid-type]
                     AfterValidator(unique)]


class BlockLists(_Strict):
    """Entries are what an order can carry: buyer accounts, contacts, regions; IPs may be networks (CIDR)."""

    accounts: _block_list(Account) = []  # type: ignore[valid-type]
    contacts: _block_list(Contact) = []  # type: ignore[valid-type]
    ips: _block_list(IpNetwork) = []  # type: ignore[valid-type]
    regions: _block_list(Region) = []  # type: ignore[valid-type]


class SiteDailyLimits(_Strict):
    max_orders: OrderCount = 10_000  # type: ignore[valid-type]
    max_amount_cents: PositiveCents = 50_000_000  # type: ignore[valid-type]
    action: Action = "review"


class NewSiteLimits(_Strict):
    days: integer(0, 365) = 7  # type: ignore[valid-type]
    max_orders_per_day: OrderCount = 300  # type: ignore[valid-type]
    max_amount_cents_per_order: PositiveCents = 50_000  # type: ignore[valid-type]
    action: Action = "review"


class Rules(_Strict):
    version: Literal[1] = 1
    limits: AmountLimits = AmountLimits()
    velocity: list[VelocityRule] = Field(default=[
        VelocityRule(key="account", window_seconds=600, max_orders=5, action="review"),
        VelocityRule(key="account", window_seconds=3600, max_orders=30, action="reject"),
        VelocityRule(key="contact", window_seconds=600, max_orders=10, action="review"),
        VelocityRule(key="ip", window_seconds=600, max_orders=20, action="review"),
    ], max_length=50)
    block: BlockLists = BlockLists()
    site_daily: SiteDailyLimits = SiteDailyLimits()
    new_site: NewSiteLimits = NewSiteLimits()
    foreign_region_action: Action | None = "review"


def parse_rules(data: object) -> Rules:
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "rules"
        raise InvalidInput(f"risk rules: {where}: {err['msg']}") from None


class RuleSource:
    """The rules file, reloaded when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[float, Rules] | None = None

    def get(self) -> Rules:
        if not self.path.exists():
            self.save(Rules())
        mtime = self.path.stat().st_mtime
        if self._cache is None or self._cache[0] != mtime:
            try:
                self._cache = (mtime, self.load())
            except InvalidInput as exc:
                if self._cache is None:
                    raise
                # a half-edited file must not stop orders: keep deciding with the last good rules
                log.error("%s; still using the previous rules", exc)
        return self._cache[1]

    def load(self) -> Rules:
        """Parse the file now; InvalidInput with one line if it is not valid rules."""
        try:
            data = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"risk rules file {self.path.name} is not JSON: {exc}") from None
        return parse_rules(data)

    def save(self, rules: Rules) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rules.model_dump(mode="json"), indent=2) + "\n")
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class Candidate:
    """What the engine looks at for one order."""

    site_id: str
    quantity: int
    amount_cents: int
    account: str | None
    contact: str
    ip: str | None
    region: str | None
    licence_regions: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    decision: Literal["approve", "review", "reject"]
    reasons: list[str]


@dataclass(frozen=True)
class Counts:
    """What the database says about the candidate's recent past (excluding the candidate)."""

    velocity: dict[str, list[int]]  # per signal ("account"...), one count per rule of that signal, in rule order
    site_orders_today: int
    site_amount_today: int
    site_created_at: datetime | None


def evaluate(session: Session, rules: Rules, c: Candidate, now: datetime) -> Decision:
    """Apply every rule; the strongest action wins, every fired rule is a reason."""
    return judge(rules, c, count(session, rules, c, now), now)


def count(session: Session, rules: Rules, c: Candidate, now: datetime) -> Counts:
    """The candidate's counts from the database: one query per velocity signal, one for the site."""
    values = {"account": c.account, "contact": c.contact, "ip": c.ip}
    velocity: dict[str, list[int]] = {}
    for key in ("account", "contact", "ip"):
        mine = [r for r in rules.velocity if r.key == key]
        if mine and values[key]:
            velocity[key] = velocity_counts(session, mine, key, [values[key]], now).get(values[key], [0] * len(mine))
    orders, amount = site_today(session, c.site_id, now)
    site = session.get(Site, c.site_id)
    return Counts(velocity, orders, amount, site.created_at if site is not None else None)


def judge(rules: Rules, c: Candidate, counts: Counts, now: datetime) -> Decision:
    """The decision for `c` given its counts; no database access."""
    fired: list[tuple[str, str]] = []
    fired += _blocked(rules.block, c)
    fired += _amounts(rules.limits, c)
    fired += _velocity(rules.velocity, counts)
    fired += _site_limits(rules, c, counts, now)
    if rules.foreign_region_action and c.region and not _region_allowed(c.region, c.licence_regions):
        fired.append((rules.foreign_region_action, f"region_outside_licence:{c.region}"))
    if not fired:
        return Decision("approve", [])
    worst = max(fired, key=lambda f: SEVERITY[f[0]])[0]
    return Decision(worst, [reason for _, reason in fired])  # type: ignore[arg-type]


def _region_allowed(region: str, allowed: tuple[str, ...]) -> bool:
    country = region.split("-")[0].upper()
    return any(a.upper() in (region.upper(), country) for a in allowed)


def _blocked(block: BlockLists, c: Candidate) -> list[tuple[str, str]]:
    out = []
    if c.account and c.account in block.accounts:
        out.append(("reject", "blocked_account"))
    if c.contact in block.contacts:
        out.append(("reject", "blocked_contact"))
    if c.region and c.region in block.regions:
        out.append(("reject", "blocked_region"))
    if c.ip and block.ips:
        try:
            addr = ipaddress.ip_address(c.ip)
            if any(addr in ipaddress.ip_network(n, strict=False) for n in block.ips):
                out.append(("reject", "blocked_ip"))
        except ValueError:
            pass
    return out


def _amounts(limits: AmountLimits, c: Candidate) -> list[tuple[str, str]]:
    out = []
    if c.amount_cents >= limits.reject_amount_cents:
        out.append(("reject", f"amount_over:{limits.reject_amount_cents}"))
    elif c.amount_cents >= limits.review_amount_cents:
        out.append(("review", f"amount_over:{limits.review_amount_cents}"))
    if c.quantity >= limits.reject_quantity:
        out.append(("reject", f"quantity_over:{limits.reject_quantity}"))
    elif c.quantity >= limits.review_quantity:
        out.append(("review", f"quantity_over:{limits.review_quantity}"))
    return out


_VELOCITY_COLUMN = {"account": Order.buyer_account, "contact": Order.buyer_contact, "ip": Order.buyer_ip}


@lru_cache(maxsize=64)
def _velocity_statement(key: str, windows: int, postgres: bool):  # type: ignore[no-untyped-def]
    """Built once per (signal, number of windows): building SQL per order costs more than running it.

    On PostgreSQL the values travel as one array (`= ANY(...)`), so the SQL text
    stays the same for any batch size and the driver parses it once.
    """
    column = _VELOCITY_COLUMN[key]
    return (select(column, *[func.coalesce(func.sum(case((Order.received_at >= bindparam(f"since_{i}"), 1),
                                                         else_=0)), 0) for i in range(windows)])
            .where(one_of(column, "values", postgres), Order.received_at >= bindparam("earliest"))
            .group_by(column))


def velocity_counts(conn: "Session | Connection", rules: list[VelocityRule], key: str, values: list[str],
                    now: datetime) -> dict[str, list[int]]:
    """For each value of one signal, how many orders fall in each rule's window (one grouped query)."""
    sinces = [now - timedelta(seconds=r.window_seconds) for r in rules]
    params = {f"since_{i}": since for i, since in enumerate(sinces)}
    rows = conn.execute(_velocity_statement(key, len(rules), _postgres(conn)),
                        {**params, "values": values, "earliest": min(sinces)}).all()
    return {row[0]: [int(n or 0) for n in row[1:]] for row in rows}


def _postgres(conn: "Session | Connection") -> bool:
    dialect = conn.dialect if isinstance(conn, Connection) else conn.get_bind().dialect
    return dialect.name == "postgresql"


@lru_cache(maxsize=2)
def _sites_today_statement(postgres: bool):  # type: ignore[no-untyped-def]
    return (select(SiteDay.site_id, SiteDay.orders, SiteDay.amount_cents)
            .where(one_of(SiteDay.site_id, "sites", postgres), SiteDay.day == bindparam("day")))


def utc_day(now: datetime) -> date:
    """The day `site_days` counts `now` in: HQ's days run midnight to midnight UTC."""
    return aware(now).astimezone(timezone.utc).date()


def sites_today(conn: "Session | Connection", sites: list[str], now: datetime) -> dict[str, tuple[int, int]]:
    """Each site's orders and amount since HQ's midnight (UTC): a row of `site_days` a site, whatever the table's
    size, all the sites in one statement."""
    rows = conn.execute(_sites_today_statement(_postgres(conn)), {"sites": sites, "day": utc_day(now)})
    found = {site: (int(n), int(amount)) for site, n, amount in rows}
    return {site: found.get(site, (0, 0)) for site in sites}


def site_today(conn: "Session | Connection", site_id: str, now: datetime) -> tuple[int, int]:
    """The site's orders and amount since HQ's midnight (UTC)."""
    return sites_today(conn, [site_id], now)[site_id]


def _velocity(rules: list[VelocityRule], counts: Counts) -> list[tuple[str, str]]:
    out = []
    for key in ("account", "contact", "ip"):
        seen = counts.velocity.get(key)
        if seen is None:
            continue
        for rule, n in zip([r for r in rules if r.key == key], seen):
            if n >= rule.max_orders:
                out.append((rule.action, f"velocity_{rule.key}:{rule.max_orders}/{rule.window_seconds}s"))
    return out


def _site_limits(rules: Rules, c: Candidate, counts: Counts, now: datetime) -> list[tuple[str, str]]:
    out = []
    count_, amount = counts.site_orders_today, counts.site_amount_today
    daily = rules.site_daily
    if count_ >= daily.max_orders:
        out.append((daily.action, f"site_daily_orders:{daily.max_orders}"))
    if amount + c.amount_cents > daily.max_amount_cents:
        out.append((daily.action, f"site_daily_amount:{daily.max_amount_cents}"))
    new = rules.new_site
    created = counts.site_created_at
    if created is not None and new.days and now - aware(created) < timedelta(days=new.days):
        if count_ >= new.max_orders_per_day:
            out.append((new.action, f"new_site_daily_orders:{new.max_orders_per_day}"))
        if c.amount_cents > new.max_amount_cents_per_order:
            out.append((new.action, f"new_site_amount:{new.max_amount_cents_per_order}"))
    return out
