"""Decide a batch of new orders in one transaction, with a fixed number of statements.

The per-order path (hq.orders.decide_one) costs about ten statements and a
transaction per order. Here a whole batch (1..200 orders) takes: one read of
orders already known, one of the catalog items, one grouped velocity count
per signal, one for the site's day, one lock of the card keys per SKU, one
multi-row insert of the orders, one update of the keys and one of the
Idempotency-Key, plus the ledger's entries for the delivered orders. The rules are the same (hq.risk.judge); the counts start
from the database and grow with each order of the batch in memory, exactly
as if the orders had been decided one after another.

A gateway that makes its pay links over the network (Alipay, WeChat Pay) is
asked for them before the transaction opens (`links_beforehand`), for the
orders the rules approve at that moment; the transaction then uses them.

If anything here meets a concurrent writer (the same order_id inserted by
another request), the transaction is rolled back and the caller falls back
to the per-order path, which settles such races one order at a time.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from hq import risk
from hq.ledger import events as ledger
from hq.clock import utcnow
from hq.errors import ApiError
from hq.metrics import metrics
from hq.db import one_of
from hq.models import CardKey, CatalogItem, IdempotencyKey, Order, Site
from hq.amounts import charge_cents
from hq.order_checks import SiteContext, catalog_problem
from hq.payments import flow as payments
from hq.payments import gateways

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hq.schemas import OrderIn
    from hq.service import HQ

SIGNALS = ("account", "contact", "ip")


@lru_cache(maxsize=2)
def _sql(postgres: bool = False) -> SimpleNamespace:
    """The statements, built once: constructing SQLAlchemy statements per request costs more than running them.

    Each reads what the batch needs of all its sites at once (one statement, not one a site): a group of
    single-order requests (hq.order_groups) is as many sites as orders.
    """
    return SimpleNamespace(
        known=select(Order.site_id, Order.order_id, Order.request_sha256)
        .where(one_of(Order.site_id, "sites", postgres), one_of(Order.order_id, "ids", postgres)),
        sites_created=select(Site.id, Site.created_at).where(one_of(Site.id, "sites", postgres)),
        items=select(
            CatalogItem.sku, CatalogItem.category, CatalogItem.status, CatalogItem.deleted, CatalogItem.min_qty,
            CatalogItem.max_qty, CatalogItem.stock_kind, CatalogItem.account_pattern, CatalogItem.price_cents,
        ).where(CatalogItem.sku.in_(bindparam("skus", expanding=True))),
        keys=select(CardKey.id, CardKey.sku, CardKey.serial, CardKey.secret_enc)
        .where(CardKey.sku == bindparam("sku"), CardKey.status == "available").order_by(CardKey.id)
        .limit(bindparam("n")).with_for_update(skip_locked=True),
        insert_orders=insert(Order).returning(Order.id, sort_by_parameter_order=True),
        sell_key=update(CardKey).where(CardKey.id == bindparam("key_id"), CardKey.status == "available")
        .values(status="sold", sold_at=bindparam("now"), order_pk=bindparam("pk")),
        reserve_key=update(CardKey).where(CardKey.id == bindparam("key_id"), CardKey.status == "available")
        .values(status="reserved", order_pk=bindparam("pk")),
        finish_key=update(IdempotencyKey).where(IdempotencyKey.site_id == bindparam("site"),
                                                IdempotencyKey.key == bindparam("idem"))
        .values(state="done", hq_order_ids=bindparam("hq_ids", type_=IdempotencyKey.__table__.c.hq_order_ids.type)),
    )


@dataclass(frozen=True)
class Part:
    """One request's share of a batch: who sent it (the site, from its licence), the Idempotency-Key it
    claimed, and how many of the batch's orders, one after another, are its own."""

    ctx: SiteContext
    key: str
    count: int


def decide_new(hq: "HQ", parts: list[Part], orders: list["OrderIn"], digests: list[str]) -> list[dict[str, Any]] | None:
    """Results for a batch none of whose orders HQ knows yet; None if some are known (use the per-order path).

    The batch is one request's orders or several requests' (hq.order_groups), of one site or several:
    `parts` say whose each order is; each key is finished with its own orders' ids."""
    ctxs = _contexts(parts, orders)
    early = links_beforehand(hq, ctxs, orders)
    with hq.connection() as conn:
        sql = _sql(conn.dialect.name == "postgresql")
        known = _known(conn, sql, ctxs, orders)
        if known:
            for ctx, order, digest in zip(ctxs, orders, digests):
                if known.get((ctx.site_id, order.order_id), digest) != digest:
                    raise ApiError(422, "idempotency_conflict",
                                   f"order {order.order_id!r} was already sent with a different body")
            return None
        now = utcnow()
        gateway = gateways.active(hq, conn)  # None: test mode, approval delivers at once
        items = {r.sku: r for r in conn.execute(sql.items, {"skus": sorted({o.sku for o in orders})})}
        decisions = _judge_all(hq, conn, ctxs, orders, items, now)
        stock = _lock_keys(conn, orders, decisions, items)
        rows, keys_for = _rows(ctxs, orders, digests, decisions, items, stock, now,
                               "pending_payment" if gateway else "delivered")
        ids = _insert_orders(conn, rows)
        _mark_sold(conn, keys_for, ids, now, reserve=gateway is not None)
        ledger.order_paid(conn, [_paid(row, items) for row in rows if row["status"] == "delivered"], now)
        paying = {} if gateway is None else payments.open_payments(hq, conn, gateway, [
            payments.Payable(ids[i], r["site_id"], r["order_id"], r["sku"], r["quantity"],
                             charge_cents(r["unit_price_cents"], r["quantity"], r["total_cents"]), r["currency"])
            for i, r in enumerate(rows) if r["status"] == "pending_payment"], now, early.links_for(gateway))
        conn.execute(sql.finish_key, _finished_keys(parts, [r["hq_order_id"] for r in rows]))
    if any(p["status"] != "pending" for p in paying.values()):
        return None  # a waiting notification settled one of them: the per-order path reads them back as stored
    counted = metrics()
    for row in rows:  # counted once committed
        counted.decided(row["decision"], row["reasons"])
    return [_result(hq, row, keys_for.get(i), paying.get(ids[i])) for i, row in enumerate(rows)]


def _contexts(parts: list[Part], orders: list["OrderIn"]) -> list[SiteContext]:
    """Each order's site context, by the parts the batch is made of."""
    ctxs = [part.ctx for part in parts for _ in range(part.count)]
    if len(ctxs) != len(orders):
        raise ValueError(f"the parts name {len(ctxs)} orders, the batch has {len(orders)}")
    return ctxs


def _known(conn: "Connection", sql: SimpleNamespace, ctxs: list[SiteContext],
           orders: list["OrderIn"]) -> dict[tuple[str, str], str]:
    """(site, order_id) → stored digest of the batch's orders HQ already has: one look-up for every site."""
    asked = {(ctx.site_id, order.order_id) for ctx, order in zip(ctxs, orders)}
    rows = conn.execute(sql.known, {"sites": sorted({site for site, _ in asked}),
                                    "ids": sorted({order_id for _, order_id in asked})})
    return {(site, order_id): digest for site, order_id, digest in rows if (site, order_id) in asked}


def _finished_keys(parts: list[Part], hq_ids: list[str]) -> list[dict[str, Any]]:
    """Each key's row update: the ids of its own orders, which follow one another in the batch."""
    params, start = [], 0
    for part in parts:
        params.append({"site": part.ctx.site_id, "idem": part.key, "hq_ids": hq_ids[start:start + part.count]})
        start += part.count
    return params


def links_beforehand(hq: "HQ", ctxs: list[SiteContext], orders: list["OrderIn"]) -> payments.Beforehand:
    """Pay links for the orders the risk engine approves now (`ctxs`: each order's site), asked of a gateway that
    makes them over the network (`creates_remotely`: Alipay, WeChat Pay) before the batch's transaction opens, so a slow gateway holds no lock
    and no writer waits for it; an unreachable one fails the batch before anything is stored, as before. The
    decision inside the transaction is the one that counts: an order approved there without a link here (the
    counts moved meanwhile) gets one there; one given a link here but not approved there leaves an unpaid
    trade at the gateway that no buyer is shown (the same out_trade_no, so an approval later asks for the same).
    The per-order path asks the same for its one order."""
    with hq.read() as conn:
        gateway = payments.remote_gateway(hq, conn)
        if gateway is None:
            return payments.NOTHING_BEFOREHAND
        sql = _sql(conn.dialect.name == "postgresql")
        if _known(conn, sql, ctxs, orders):
            return payments.NOTHING_BEFOREHAND  # known orders are read back, not approved again
        items = {r.sku: r for r in conn.execute(sql.items, {"skus": sorted({o.sku for o in orders})})}
        decisions = _judge_all(hq, conn, ctxs, orders, items, utcnow())
    payables = [payments.Payable(0, ctx.site_id, o.order_id, o.sku, o.quantity,
                                 charge_cents(o.unit_price_cents, o.quantity, o.total_cents), o.currency)
                for ctx, o, d in zip(ctxs, orders, decisions) if d.decision == "approve"]
    return payments.ask_beforehand(hq, gateway, payables)


def _judge_all(hq: "HQ", conn: "Connection", ctxs: list[SiteContext], orders: list["OrderIn"],
               items: dict[str, Any], now: datetime) -> list[risk.Decision]:
    """Each order's decision (`ctxs`: each order's site), counting the batch's earlier orders as the database would."""
    rules = hq.rules.get()
    by_signal = {k: [r for r in rules.velocity if r.key == k] for k in SIGNALS}
    values = {k: sorted({v for v in (_signal(o, k) for o in orders) if v}) for k in SIGNALS}
    velocity = {k: risk.velocity_counts(conn, by_signal[k], k, values[k], now) if by_signal[k] and values[k] else {}
                for k in SIGNALS}
    sites = sorted({ctx.site_id for ctx in ctxs})
    day = risk.sites_today(conn, sites, now)
    created = dict(conn.execute(_sql(conn.dialect.name == "postgresql").sites_created, {"sites": sites}).all())
    out = []
    for ctx, order in zip(ctxs, orders):
        amount = order.unit_price_cents * order.quantity
        site_orders, site_amount = day[ctx.site_id]
        problem = catalog_problem(items.get(order.sku), ctx, order)
        if problem:
            out.append(risk.Decision("reject", [problem]))
        else:
            counts = risk.Counts(
                velocity={k: velocity[k].get(v, [0] * len(by_signal[k]))
                          for k in SIGNALS if by_signal[k] and (v := _signal(order, k))},
                site_orders_today=site_orders, site_amount_today=site_amount, site_created_at=created.get(ctx.site_id))
            candidate = risk.Candidate(
                site_id=ctx.site_id, quantity=order.quantity, amount_cents=amount, account=order.buyer.account,
                contact=order.buyer.contact, ip=order.buyer.ip, region=order.buyer.region,
                licence_regions=ctx.regions)
            out.append(risk.judge(rules, candidate, counts, now))
        day[ctx.site_id] = (site_orders + 1, site_amount + amount)
        for k in SIGNALS:  # this order now counts in every window of its signals
            v = _signal(order, k)
            if by_signal[k] and v:
                seen = velocity[k].setdefault(v, [0] * len(by_signal[k]))
                velocity[k][v] = [n + 1 for n in seen]
    return out


def _signal(order: "OrderIn", key: str) -> str | None:
    return {"account": order.buyer.account, "contact": order.buyer.contact, "ip": order.buyer.ip}[key]


def _lock_keys(conn: "Connection", orders: list["OrderIn"], decisions: list[risk.Decision],
               items: dict[str, Any]) -> dict[str, list[Any]]:
    """Lock enough available keys for every approved card-key order, per SKU (SKIP LOCKED on PostgreSQL)."""
    wanted: dict[str, int] = defaultdict(int)
    for order, decision in zip(orders, decisions):
        if decision.decision == "approve" and items[order.sku].stock_kind == "card_key":
            wanted[order.sku] += order.quantity
    return {sku: list(conn.execute(_sql().keys, {"sku": sku, "n": n})) for sku, n in wanted.items()}


def _rows(ctxs: list[SiteContext], orders: list["OrderIn"], digests: list[str], decisions: list[risk.Decision],
          items: dict[str, Any], stock: dict[str, list[Any]], now: datetime,
          approved: str = "delivered") -> tuple[list[dict[str, Any]], dict[int, list[Any]]]:
    """Order rows to insert (final decision and status) and, by batch position, the keys each one gets.

    `approved` is the status an approved order takes: `delivered`, or `pending_payment` with a gateway."""
    rows, keys_for = [], {}
    for i, (ctx, order, digest, decision) in enumerate(zip(ctxs, orders, digests, decisions)):
        item = items.get(order.sku)
        status = {"approve": approved, "review": "review", "reject": "rejected"}[decision.decision]
        verdict, reasons = decision.decision, list(decision.reasons)
        if verdict == "approve" and item.stock_kind == "card_key":
            available = stock[order.sku]
            if len(available) < order.quantity:
                verdict, status, reasons = "reject", "rejected", [*reasons, "out_of_stock"]
            else:
                keys_for[i], stock[order.sku] = available[:order.quantity], available[order.quantity:]
        rows.append({
            "hq_order_id": "hq_" + uuid.uuid4().hex, "site_id": ctx.site_id, "order_id": order.order_id,
            "request_sha256": digest, "sku": order.sku, "quantity": order.quantity,
            "unit_price_cents": order.unit_price_cents, "total_cents": order.total_cents, "hq_price_cents": item.price_cents if item is not None else None,
            "currency": order.currency, "buyer_account": order.buyer.account, "buyer_contact": order.buyer.contact,
            "buyer_ip": order.buyer.ip, "buyer_region": order.buyer.region, "site_created_at": order.created_at,
            "received_at": now, "decision": verdict, "status": status, "reasons": reasons,
            "decided_by": "risk-engine", "decided_at": now,
        })
    return rows, keys_for


def _insert_orders(conn: "Connection", rows: list[dict[str, Any]]) -> list[int]:
    """Insert the batch's orders; their primary keys in batch order.

    On PostgreSQL this goes straight to psycopg's pipelined executemany: one
    short statement parsed once, instead of a multi-row INSERT whose SQL text
    (thousands of placeholders) the driver would parse again for every batch.
    """
    if conn.dialect.name != "postgresql":
        return [r.id for r in conn.execute(_sql().insert_orders, rows)]
    from psycopg.types.json import Json

    cursor = conn.connection.driver_connection.cursor()  # same connection, same transaction
    cursor.executemany(_pg_insert_text(conn.dialect, tuple(rows[0])), [{**r, "reasons": Json(r["reasons"])} for r in rows],
                       returning=True)
    ids = []
    while True:
        ids.append(int(cursor.fetchone()[0]))
        if not cursor.nextset():
            return ids


@lru_cache(maxsize=4)
def _pg_insert_text(dialect: Any, columns: tuple[str, ...]) -> str:
    return str(insert(Order).returning(Order.id).compile(dialect=dialect, column_keys=list(columns)))


def _mark_sold(conn: "Connection", keys_for: dict[int, list[Any]], order_pks: list[int], now: datetime,
               reserve: bool = False) -> None:
    """Mark every key the batch took sold, or reserved for a payment (one executemany); refuses (rolls back)
    if any was no longer available."""
    params = [{"key_id": k.id, "pk": order_pks[i], "now": now} for i, keys in keys_for.items() for k in keys]
    if not params:
        return
    if reserve:
        params = [{"key_id": p["key_id"], "pk": p["pk"]} for p in params]
    result = conn.execute(_sql().reserve_key if reserve else _sql().sell_key, params)
    if conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(params):
        raise RuntimeError("card-key allocation raced; transaction rolled back")  # cannot happen under the locks


def _paid(row: dict[str, Any], items: dict[str, Any]) -> ledger.PaidOrder:
    return ledger.paid_order(SimpleNamespace(**row), items[row["sku"]].category)


def _result(hq: "HQ", row: dict[str, Any], keys: list[Any] | None,
            payment: dict[str, Any] | None = None) -> dict[str, Any]:
    delivery = None
    if row["status"] == "delivered":
        delivery = {"card_keys": [{"serial": k.serial, "secret": hq.vault.decrypt(k.secret_enc, context=f"{k.sku}:{k.serial}")}
                                  for k in keys or []]}
    return {"order_id": row["order_id"], "hq_order_id": row["hq_order_id"], "decision": row["decision"],
            "status": row["status"], "reasons": row["reasons"], "delivery": delivery, "replayed": False,
            "payment": payment}
