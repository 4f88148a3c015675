"""Settlement between HQ and the site database: statements and ledger entries in, the finance role's answers out.

The storefront and the agent never call each other: the finance role's
confirmation or dispute is written to `settlement_statements` (answer_state
`pending`), and this unit takes it to HQ like an order from the outbox — on
the agent's licence-authenticated client, retried with back-off while HQ is
away, and marked `refused` with HQ's one-line reason when HQ says no (the
statement was already answered, or is not this site's). HQ's statements and
the site's ledger entries come back the other way, so the site's pages show
HQ's own figures. Payout requests travel the same way (`payout_requests`,
send_state `pending`); their id is HQ's request_id, so a resend never makes a
second payout. HQ's decisions on them and its balance and payout terms come
back on every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable, TypeVar

from sqlalchemy import Column, Connection, Engine, Row, Table, insert, select, update

from agent.decisions import refunded_after_delivery
from agent.hq_client import EntryPage, HQClient, HQError, LedgerEntry, PayoutInfo, StatementInfo, plain
from agent.metrics import AgentMetrics
from agent.outbox import backoff_seconds
from agent.state import STATE_ID, as_utc, utcnow
from sitedb.tables import ENTRY_AMOUNTS, audit_log, complaints, payout_requests, settlement_entries, settlement_statements, site_state

log = logging.getLogger("agent.settlement")
ANSWER_BATCH = 50
PAGE = 1000
MAX_PAGES = 20  # one run copies at most this many pages; the next run goes on
FINAL = ("client", "conflict")  # 4xx but 401/403/410/429: HQ's no to this answer, not a passing state


@dataclass(frozen=True)
class Queue:
    """Where one kind of the site's messages to HQ waits: its table, its `<prefix>_state/attempts/next_at/error`
    columns, the audit action and detail key, and the outcome's count of refusals."""

    table: Table
    prefix: str
    action: str
    key: str
    refused_count: str

    def col(self, name: str) -> Column[Any]:
        return self.table.c[f"{self.prefix}_{name}"]


ANSWERS = Queue(settlement_statements, "answer", "statement_answer", "statement", "answers_refused")
PAYOUTS = Queue(payout_requests, "send", "payout_request", "request", "payouts_refused")
COMPLAINTS = Queue(complaints, "send", "complaint", "complaint", "complaints_refused")
T = TypeVar("T")


@dataclass
class SettlementOutcome:
    answers_sent: int = 0
    answers_refused: int = 0
    payouts_sent: int = 0
    payouts_refused: int = 0
    complaints_sent: int = 0
    complaints_refused: int = 0
    statements: int = 0
    entries: int = 0
    contacted_hq: bool = True


class SettlementSync:
    """One bounded unit of settlement work per `run()`: send answers, then read statements and entries."""

    def __init__(self, engine: Engine, client: HQClient, metrics: AgentMetrics | None = None,
                 backoff_base: float = 1.5, backoff_cap: float = 300.0) -> None:
        self.engine = engine
        self.client = client
        self.metrics = metrics
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

    def run(self) -> SettlementOutcome:
        outcome = SettlementOutcome()
        self.send_answers(outcome)
        self.send_payouts(outcome)
        self.send_complaints(outcome)
        outcome.statements = self.pull_statements()
        outcome.entries = self.pull_entries()
        self.pull_payouts()
        return outcome

    # -- answers and payout requests out --------------------------------------------
    def send_answers(self, outcome: SettlementOutcome) -> None:
        """Every due pending answer to HQ; HQ's record of it comes back into the row."""
        t = settlement_statements.c
        for row in self._due(ANSWERS, (t.id, t.answer, t.answer_comment, t.answer_attempts), t.answered_at):
            held = self._deliver(ANSWERS, row.id, row.answer_attempts, outcome,
                                 lambda: self.client.answer_statement(row.id, row.answer, row.answer_comment))
            if held is not None:
                self._sent(held)
                outcome.answers_sent += 1

    def send_payouts(self, outcome: SettlementOutcome) -> None:
        """Every due pending request to HQ under its own id; HQ's record of it comes back into the row."""
        t = payout_requests.c
        for row in self._due(PAYOUTS, (t.id, t.amount_fen, t.send_attempts), t.requested_at):
            held = self._deliver(PAYOUTS, row.id, row.send_attempts, outcome,
                                 lambda: self.client.request_payout(row.id, int(row.amount_fen)))
            if held is not None:
                with self.engine.begin() as conn:
                    _store_payout(conn, held)
                    conn.execute(insert(audit_log).values(actor="agent", action="payout_request_sent", at=utcnow(),
                                                          detail={"request": held.request_id, "payout": held.id}))
                outcome.payouts_sent += 1

    def send_complaints(self, outcome: SettlementOutcome) -> None:
        """Buyers' complaints to HQ under the site's own id (a resend is the same complaint); HQ's id comes back."""
        t = complaints.c
        for row in self._due(COMPLAINTS, (t.id, t.order_id, t.text, t.filed_at, t.send_attempts), t.filed_at):
            held = self._deliver(COMPLAINTS, row.id, row.send_attempts, outcome,
                                 lambda: self.client.complaint(row.id, row.order_id, row.text, as_utc(row.filed_at)))
            if held is not None:
                with self.engine.begin() as conn:
                    conn.execute(update(complaints).where(t.id == row.id).values(
                        send_state="sent", send_error=None, send_next_at=None, hq_id=held.id, hq_status=held.status))
                    conn.execute(insert(audit_log).values(actor="agent", action="complaint_sent", at=utcnow(),
                                                          detail={"complaint": row.id, "hq_id": held.id}))
                outcome.complaints_sent += 1

    def _due(self, queue: Queue, columns: tuple[Any, ...], since: Any) -> list[Row[Any]]:
        now = utcnow()
        with self.engine.connect() as conn:
            return list(conn.execute(select(*columns).where(queue.col("state") == "pending",
                                                            queue.col("next_at").is_(None) | (queue.col("next_at") <= now))
                                     .order_by(since, queue.table.c.id).limit(ANSWER_BATCH)))

    def _deliver(self, queue: Queue, key: Any, attempts: int, outcome: SettlementOutcome,
                 send: Callable[[], T]) -> T | None:
        """HQ's answer to `send()`; None when HQ refused it for good (marked) or it waits (back-off).

        HQ away (timeout, no connection) raises: the rest waits for the loop's back-off.
        """
        try:
            return send()
        except HQError as exc:
            if exc.kind in FINAL:  # HQ answered, and will never take it
                self._refused(queue, key, exc)
                setattr(outcome, queue.refused_count, getattr(outcome, queue.refused_count) + 1)
                return None
            self._later(queue, key, attempts + 1, exc)  # HQ away or busy, or the licence held
            if exc.kind in ("timeout", "connect"):
                raise
            return None

    def _later(self, queue: Queue, key: Any, attempts: int, exc: HQError) -> None:
        wait = backoff_seconds(attempts, self.backoff_base, self.backoff_cap)
        with self.engine.begin() as conn:
            conn.execute(update(queue.table).where(queue.table.c.id == key, queue.col("state") == "pending")
                         .values({queue.col("attempts"): attempts,
                                  queue.col("next_at"): utcnow() + timedelta(seconds=wait),
                                  queue.col("error"): exc.detail[:200]}))

    def _refused(self, queue: Queue, key: Any, exc: HQError) -> None:
        """HQ will never take this (e.g. `already_answered`, `below_minimum`): the page says so, with HQ's reason."""
        with self.engine.begin() as conn:
            conn.execute(update(queue.table).where(queue.table.c.id == key, queue.col("state") == "pending")
                         .values({queue.col("state"): "refused", queue.col("error"): exc.detail[:200]}))
            conn.execute(insert(audit_log).values(actor="agent", action=f"{queue.action}_refused", at=utcnow(),
                                                  detail={queue.key: key, "error": exc.code}))
        log.warning("HQ refused a %s", queue.action.replace("_", " "), extra={queue.key: key, "code": exc.code})

    def _sent(self, held: StatementInfo) -> None:
        t = settlement_statements.c
        with self.engine.begin() as conn:
            conn.execute(update(settlement_statements).where(t.id == held.id)
                         .values(answer_state="sent", answer_error=None, answer_next_at=None, **_hq_fields(held)))
            conn.execute(insert(audit_log).values(actor="agent", action="statement_answer_sent", at=utcnow(),
                                                  detail={"statement": held.id, "response": held.response}))

    # -- statements, entries, payouts and payout terms in ------------------------------
    def pull_payouts(self) -> None:
        """HQ's decisions on the site's payouts, and its balance and payout terms, for the finance page."""
        held = self.client.payouts()
        terms = plain(self.client.balance())
        with self.engine.begin() as conn:
            for payout in held:
                _store_payout(conn, payout)
            conn.execute(update(site_state).where(site_state.c.id == STATE_ID).values(payout_terms=terms))

    def pull_statements(self) -> int:
        """HQ's statements of the site: new ones added, HQ's fields of known ones refreshed (answers kept)."""
        held = self.client.statements()
        t = settlement_statements.c
        with self.engine.begin() as conn:
            known = set(conn.scalars(select(t.id).where(t.id.in_([s.id for s in held]))))
            fresh = [{"id": s.id, **_hq_fields(s)} for s in held if s.id not in known]
            if fresh:
                conn.execute(insert(settlement_statements), fresh)
            for s in held:
                if s.id in known:
                    conn.execute(update(settlement_statements).where(t.id == s.id).values(**_hq_fields(s)))
        return len(held)

    def pull_entries(self) -> int:
        """Copy the site's new ledger entries; the cursor stops before any HQ says may still be joined by others."""
        with self.engine.connect() as conn:
            cursor = int(conn.scalar(select(site_state.c.ledger_cursor).where(site_state.c.id == STATE_ID)) or 0)
        position, copied, frozen = cursor, 0, False
        for _ in range(MAX_PAGES):
            page = self.client.ledger_entries(position, PAGE)
            copied += self._store(page)
            if not frozen:
                cursor = page.next_after
                frozen = bool(page.entries) and page.next_after < page.entries[-1].id
            if not page.has_more or not page.entries:
                break
            position = page.entries[-1].id
        with self.engine.begin() as conn:
            conn.execute(update(site_state).where(site_state.c.id == STATE_ID).values(ledger_cursor=cursor))
        return copied

    def _store(self, page: EntryPage) -> int:
        """Entries never change at HQ: the ones already copied are left as they are.

        A `refund` entry names an order HQ refunded after delivery: its row turns `refunded` in the same
        transaction (the order page shows it; the agent no longer asks HQ about delivered orders)."""
        if not page.entries:
            return 0
        t = settlement_entries.c
        with self.engine.begin() as conn:
            known = set(conn.scalars(select(t.id).where(t.id.in_([e.id for e in page.entries]))))
            fresh = [_entry_row(e) for e in page.entries if e.id not in known]
            if fresh:
                conn.execute(insert(settlement_entries), fresh)
            refunded = refunded_after_delivery(conn, [e.source for e in page.entries if e.kind == "refund"], utcnow())
        if refunded and self.metrics is not None:
            self.metrics.payments_resolved.labels("refunded").inc(len(refunded))
        return len(fresh)


def _store_payout(conn: Connection, p: PayoutInfo) -> None:
    """HQ's record onto the site's request (sent: HQ has it); only requests made at this site are kept."""
    t = payout_requests.c
    conn.execute(update(payout_requests).where(t.id == p.request_id).values(
        send_state="sent", send_error=None, send_next_at=None, hq_id=p.id, status=p.status, fee_fen=p.fee_fen,
        transfer_ref=p.transfer_ref, reason=p.reason,
        decided_at=_instant(p.decided_at) if p.decided_at else None))


def _hq_fields(s: StatementInfo) -> dict[str, Any]:
    return {"cadence": s.cadence, "period_start": date.fromisoformat(s.period_start),
            "period_end": date.fromisoformat(s.period_end),
            "totals": {k: getattr(s.totals, k) for k in s.totals.__struct_fields__},
            "csv_sha256": s.csv_sha256, "issued_at": _instant(s.issued_at), "hq_response": s.response,
            "hq_comment": s.comment, "hq_resolution": s.resolution}


def _entry_row(e: LedgerEntry) -> dict[str, Any]:
    return {"id": e.id, "posted_at": _instant(e.posted_at), "kind": e.kind, "source": e.source,
            "reference": e.reference, **{name: getattr(e, name) for name in ENTRY_AMOUNTS}}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
