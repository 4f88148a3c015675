"""Writing HQ's decisions onto order rows, a whole batch at once, guarded by the row's status.

A decision lands only on a row still in the status it was sent from (`pending`, or
`review` for a polled order): a replayed answer after a crash, or a second answer for the
same order, changes nothing. The caller's transaction also writes an audit entry per
decided order. Each writer returns the rows it changed (the columns plugins are told).

PostgreSQL: one statement per batch (the decisions as one JSON parameter, an UPDATE … FROM
it, the audit INSERT fed by the UPDATE's RETURNING), instead of a SELECT … FOR UPDATE, an
UPDATE per row and an INSERT per row. SQLite: a SELECT, then executemany for the UPDATE and
the audit rows (sqlite3 loops in C; SQLite's writer lock already serialises writers).
"""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, update

from sitedb.tables import audit_log as audit_t
from sitedb.tables import orders as orders_t
EVENT_COLUMNS = ("id", "sku", "category", "quantity", "total_cents", "currency", "status", "decision",
                 "buyer_sealed")
Decided = namedtuple("Decided", EVENT_COLUMNS)  # a changed row, as plugins are told of it
# What a decision sets; None for the last five keeps the stored value.
DECISION_FIELDS = ("id", "status", "decision", "reasons", "hq_order_id", "public_reason", "delivery_sealed",
                   "decided_at", "attempts", "next_attempt_at", "payment")


class DecisionWriter(Protocol):
    def write(self, conn: Connection, decided: list[dict[str, Any]], from_status: str,
              now: datetime) -> list[Decided]:
        """Apply `decided` (dicts of DECISION_FIELDS) to rows still in `from_status`; the changed rows."""


def decision_writer(engine: Engine) -> DecisionWriter:
    return PostgresDecisionWriter() if engine.dialect.name == "postgresql" else GenericDecisionWriter()


class PostgresDecisionWriter:
    def __init__(self) -> None:
        returning = ", ".join(f"o.{c}" for c in EVENT_COLUMNS)
        self.statement = text(f"""
            WITH v AS (
                SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(
                    id text, status text, decision text, reasons json, hq_order_id text, public_reason text,
                    delivery_sealed text, decided_at timestamptz, attempts integer, next_attempt_at timestamptz,
                    payment json)
            ), changed AS (
                UPDATE orders AS o SET
                    status = v.status, decision = v.decision, reasons = v.reasons, hq_order_id = v.hq_order_id,
                    public_reason = v.public_reason, last_error = NULL,
                    delivery_sealed = COALESCE(v.delivery_sealed, o.delivery_sealed),
                    decided_at = COALESCE(v.decided_at, o.decided_at),
                    attempts = COALESCE(v.attempts, o.attempts),
                    next_attempt_at = COALESCE(v.next_attempt_at, o.next_attempt_at),
                    payment = COALESCE(v.payment, o.payment),
                    updated_at = CAST(:now AS timestamptz)
                FROM v WHERE o.id = v.id AND o.status = :from_status
                RETURNING {returning}
            ), audited AS (
                INSERT INTO audit_log (actor, action, at, detail)
                SELECT 'agent', 'order_decided', CAST(:now AS timestamptz),
                       json_build_object('order_id', id, 'status', status, 'decision', decision)
                FROM changed
            )
            SELECT * FROM changed""")

    def write(self, conn: Connection, decided: list[dict[str, Any]], from_status: str,
              now: datetime) -> list[Decided]:
        rows = orjson.dumps(decided).decode()  # datetimes as RFC 3339 with their offset
        return [Decided(*row) for row in conn.execute(self.statement,
                                                      {"rows": rows, "from_status": from_status, "now": now})]


class GenericDecisionWriter:
    def __init__(self) -> None:
        col = orders_t.c

        def param(name: str, column: str | None = None) -> Any:  # typed: JSON and datetimes convert by column
            return bindparam(name, type_=col[column or name].type)

        keep = {c: func.coalesce(param(c), col[c]) for c in ("delivery_sealed", "decided_at", "attempts",
                                                               "next_attempt_at", "payment")}
        self.update = (update(orders_t)
                       .where(col.id == param("b_id", "id"), col.status == param("from_status", "status"))
                       .values(status=param("status"), decision=param("decision"), reasons=param("reasons"),
                               hq_order_id=param("hq_order_id"), public_reason=param("public_reason"),
                               last_error=None, updated_at=param("now", "updated_at"), **keep))
        self.select = select(*(orders_t.c[c] for c in EVENT_COLUMNS))

    def write(self, conn: Connection, decided: list[dict[str, Any]], from_status: str,
              now: datetime) -> list[Decided]:
        by_id = {d["id"]: d for d in decided}
        present = conn.execute(self.select.where(orders_t.c.id.in_(list(by_id)),
                                                 orders_t.c.status == from_status)).all()
        if not present:
            return []
        params = [{"payment": None, **{k: v for k, v in by_id[r.id].items() if k != "id"}, "b_id": r.id,
                   "from_status": from_status, "now": now} for r in present]
        conn.execute(self.update, params)
        conn.execute(insert(audit_t), [
            {"actor": "agent", "action": "order_decided", "at": now,
             "detail": {"order_id": r.id, "status": by_id[r.id]["status"], "decision": by_id[r.id]["decision"]}}
            for r in present])
        return [Decided(**{**r._asdict(), "status": by_id[r.id]["status"], "decision": by_id[r.id]["decision"]})
                for r in present]


def refunded_after_delivery(conn: Connection, hq_order_ids: list[str], now: datetime) -> list[str]:
    """Delivered orders HQ refunded (its ledger's `refund` entries name them): `refunded`, audited; their ids.

    The agent stops asking HQ about an order once it is delivered, so a later refund reaches the site through
    the ledger entries it copies. Only a `delivered` row changes: a replayed entry changes nothing."""
    if not hq_order_ids:
        return []
    col = orders_t.c
    rows = conn.execute(select(col.id, col.reasons).where(col.hq_order_id.in_(hq_order_ids),
                                                          col.status == "delivered")).all()
    for row in rows:
        conn.execute(update(orders_t).where(col.id == row.id, col.status == "delivered").values(
            status="refunded", reasons=[*(row.reasons or []), "refunded"][:20], public_reason="payment refunded",
            updated_at=now))
    if rows:
        conn.execute(insert(audit_t), [{"actor": "agent", "action": "order_refunded", "at": now,
                                        "detail": {"order_id": r.id, "status": "refunded"}} for r in rows])
    return [r.id for r in rows]
