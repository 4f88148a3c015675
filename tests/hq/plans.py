"""The query plans of HQ's single-order path on PostgreSQL, as EXPLAIN (ANALYZE, BUFFERS) reports them.

Shared by the plan test (tests/hq/test_hq_order_plans.py) and the bench
(bench/hq_single_bench.py): both record the statements one real order runs
and explain each again, so what is pinned is what HQ sends, not a copy.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import event

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from hq.service import HQ

SCALING_TABLES = ("orders", "card_keys", "idempotency_keys")


@dataclass(frozen=True)
class Explained:
    sql: str
    plan: dict[str, Any]

    def nodes(self) -> Iterator[dict[str, Any]]:
        stack = [self.plan["Plan"]]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.get("Plans", []))

    def seq_scans(self) -> set[str]:
        return {n["Relation Name"] for n in self.nodes() if n["Node Type"] == "Seq Scan"}

    def rows_read(self, table: str) -> int:
        """Rows the plan's scans of `table` returned (index entries counted for index-only scans)."""
        return sum(int(n.get("Actual Rows", 0) * n.get("Actual Loops", 1)) + int(n.get("Rows Removed by Filter", 0))
                   for n in self.nodes() if n.get("Relation Name") == table)

    def tables(self) -> set[str]:
        return {n["Relation Name"] for n in self.nodes() if "Relation Name" in n}


@contextmanager
def recorded(engine: "Engine") -> Iterator[list[tuple[str, Any]]]:
    """Every statement (with its parameters) `engine` runs inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not executemany:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def one_order(n: int, sku: str, ip: str) -> dict[str, Any]:
    created = datetime.now(timezone.utc).isoformat()
    return {"order_id": f"plan-{n}", "sku": sku, "quantity": 1, "unit_price_cents": 990, "currency": "CNY",
            "created_at": created, "buyer": {"account": f"plan-acct-{n}", "contact": f"plan-{n}@example.cn",
                                             "ip": ip, "region": "CN"}}


def single_order_plans(hq: "HQ", site: str, n: int, sku: str = "game-0", categories: tuple[str, ...] = ("game", "phone"),
                       ip: str = "203.0.113.9") -> tuple[dict[str, Any], list[Explained]]:
    """Submit one order for `site` as the API does; its result and EXPLAIN (ANALYZE, BUFFERS) of every SELECT it ran."""
    from hq import orders
    from hq.order_checks import SiteContext
    from hq.schemas import OrderBatch

    batch = OrderBatch.model_validate({"orders": [one_order(n, sku, ip)]})
    with recorded(hq.engine) as seen:
        results, _ = orders.submit(hq, SiteContext(site, categories, ("CN",)), f"plan-key-{n}", batch)
    out = []
    raw = hq.engine.raw_connection()
    try:
        cur = raw.cursor()
        for sql, params in seen:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            plan = cur.fetchone()[0]
            out.append(Explained(sql, (plan if isinstance(plan, list) else json.loads(plan))[0]))
        raw.rollback()
    finally:
        raw.close()
    return results[0], out


def fill_orders(url: str, sites: list[str], start: int, count: int, seconds: int = 3600,
                same_ip: str | None = None) -> None:
    """Insert `count` decided orders straight into the table, received within the last `seconds`.

    Spread over `sites`, each with its own buyer; IPs from a pool of 15 million
    unless `same_ip` puts them all behind one (a shared NAT). Then ANALYZE, as
    autovacuum would after such growth.
    """
    import psycopg

    from tests.hq.pg import plain

    with psycopg.connect(plain(url), autocommit=True) as conn:
        conn.execute(
            """INSERT INTO orders (hq_order_id, site_id, order_id, request_sha256, sku, quantity, unit_price_cents,
                   hq_price_cents, currency, buyer_account, buyer_contact, buyer_ip, buyer_region, site_created_at,
                   received_at, decision, status, reasons, decided_by, decided_at)
               SELECT 'hq_fill_' || g, (%(sites)s::text[])[1 + g %% cardinality(%(sites)s::text[])], 'fill-' || g,
                   'x', 'game-0', 1, 990, 950, 'CNY', 'fill-acct-' || g, 'fill-' || g || '@example.cn',
                   coalesce(%(ip)s, '10.' || (g %% 250) || '.' || (g / 250 %% 250) || '.' || (g / 62500 %% 250)),
                   'CN', now(), now() - (g %% %(seconds)s::int) * interval '1 second', 'approve', 'delivered', '[]',
                   'risk-engine', now()
               FROM generate_series(%(start)s::bigint, %(end)s::bigint) AS g""",
            {"sites": sites, "ip": same_ip, "seconds": seconds, "start": start, "end": start + count - 1})
        conn.execute("VACUUM ANALYZE orders")
        conn.execute("VACUUM ANALYZE site_days")
