"""The site's side of settlement: HQ's statements and ledger entries (copied in by the agent), and the answer.

Nothing here works a figure out again: every amount is HQ's, from the copy
of its ledger entries. The finance role's confirmation or dispute is written
to the statement's row (answer_state `pending`); the agent takes it to HQ.
A statement shows whether its lines are all here: opening plus the lines'
net equals closing only once the agent has copied every entry of the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from sitedb.tables import STATEMENT_TOTALS, audit_log, settlement_entries, settlement_statements, site_state, utcnow

ANSWERS = ("confirmed", "disputed")
MAX_COMMENT = 1000


class AnswerRefused(ValueError):
    """An answer the site does not send: `str(exc)` is an i18n key naming why."""


@dataclass(frozen=True)
class StatementView:
    row: Row[Any]
    lines: list[Row[Any]]

    @property
    def totals(self) -> dict[str, int]:
        return {k: int(self.row.totals.get(k, 0)) for k in STATEMENT_TOTALS}

    @property
    def complete(self) -> bool:
        """Every entry of the period is here: the lines add up from opening to closing, to the fen."""
        return self.totals["opening"] + sum(int(x.net_fen) for x in self.lines) == self.totals["closing"]

    @property
    def status(self) -> str:
        """What the page says: HQ's record first, then the answer on its way, else waiting for one."""
        if self.row.hq_response:
            return self.row.hq_response
        if self.row.answer_state in ("pending", "refused"):
            return f"{self.row.answer}_{self.row.answer_state}"
        return "open"

    @property
    def answerable(self) -> bool:
        return not self.row.hq_response and self.row.answer_state in (None, "refused")


def _instant(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def statements(conn: Connection, limit: int = 200) -> list[Row[Any]]:
    t = settlement_statements.c
    return list(conn.execute(select(settlement_statements).order_by(t.period_start.desc(), t.id.desc()).limit(limit)))


def statement(conn: Connection, statement_id: int) -> StatementView | None:
    """One statement with its lines: the site's ledger entries posted in its period, in the order posted."""
    row = conn.execute(select(settlement_statements).where(settlement_statements.c.id == statement_id)).first()
    if row is None:
        return None
    e = settlement_entries.c
    lines = list(conn.execute(select(settlement_entries).where(
        e.posted_at >= _instant(row.period_start), e.posted_at < _instant(row.period_end)).order_by(e.id)))
    return StatementView(row, lines)


def pdf(conn: Connection, view: StatementView) -> bytes:
    """The statement as PDF from the site's copy: the same bytes as HQ's PDF of it once every line is here."""
    from kitcore import statement_pdf

    site = conn.scalar(select(site_state.c.site_id).where(site_state.c.id == 1)) or ""
    row = view.row
    lines = ({**x._mapping, "entry_id": x.id, "posted_at": x.posted_at.isoformat()} for x in view.lines)
    return statement_pdf.render(statement_pdf.StatementDoc(site, row.cadence, row.period_start.isoformat(),
                                                           row.period_end.isoformat(), view.totals, lines, row.id))


def check_comment(answer: str, comment: str) -> str | None:
    """The comment as HQ will take it (HQ's rules: a dispute says why; one line of text, ≤ 1000 characters)."""
    if answer not in ANSWERS:
        raise AnswerRefused("settle.err_answer")
    comment = comment.strip()
    if answer == "disputed" and not comment:
        raise AnswerRefused("settle.err_reason")
    if len(comment) > MAX_COMMENT or any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in comment):
        raise AnswerRefused("settle.err_comment")
    return comment or None


def answer(conn: Connection, statement_id: int, answer: str, comment: str, actor: str) -> None:
    """Record the finance role's answer for the agent to send; once (again only after HQ refused the last one)."""
    text = check_comment(answer, comment)
    t = settlement_statements.c
    changed = conn.execute(update(settlement_statements).where(
        t.id == statement_id, t.hq_response.is_(None),
        t.answer_state.is_(None) | (t.answer_state == "refused")).values(
        answer=answer, answer_comment=text, answered_by=actor[:64], answered_at=utcnow(), answer_state="pending",
        answer_error=None, answer_attempts=0, answer_next_at=None))
    if changed.rowcount != 1:
        exists = conn.scalar(select(t.id).where(t.id == statement_id))
        raise LookupError(statement_id) if exists is None else AnswerRefused("settle.err_answered")
    conn.execute(insert(audit_log).values(actor=actor[:64], action=f"statement_{answer}", at=utcnow(),
                                          detail={"statement": statement_id, "comment": text}))
