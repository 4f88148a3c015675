"""Statements: one site's ledger over a week or a month, with the entries behind every figure.

A statement's figures and CSV are a pure function of the ledger entries
posted in its period (UTC days, end exclusive), and entries are never
edited. So a statement issued again for the same period is byte-identical;
HQ stores the figures and the CSV's SHA-256, and checks the hash on every
export. The site answers once: confirmed, or disputed with a comment; HQ
resolves a dispute with an adjustment posted now (in a later period), so
nothing issued ever changes.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import IO, TYPE_CHECKING, Any, Iterator

from sqlalchemy import case, func, literal, select
from sqlalchemy.exc import IntegrityError

from hq import audit
from hq.clock import iso, utcnow
from hq.errors import ApiError
from hq.ledger import accounts, events
from hq.models import LedgerEntry, LedgerLine, Site, Statement
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hq.service import HQ

CADENCES = ("weekly", "monthly")
COLUMNS = ("gross", "hq_cost", "hq_share", "fees", "adjustment", "payout")
ROLE_COLUMN = {"gross": "gross", "hq_cost": "hq_cost", "hq_share": "hq_share", "base_fee": "fees",
               "payout_fee": "fees", "adjustment": "adjustment", "payout": "payout"}
TOTAL_OF_COLUMN = {"hq_cost": "hq_cost", "hq_share": "hq_share", "fees": "fees", "adjustment": "adjustments",
                   "payout": "payouts"}
TOTALS = ("opening", "orders_gross", "refunds_gross", "hq_cost", "hq_share", "fees", "adjustments", "payouts",
          "closing")
LINE_HEADER = ("entry_id", "posted_at", "kind", "source", "reference", *(f"{c}_fen" for c in COLUMNS), "net_fen")
MAX_COMMENT = 1000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\\")


def period(cadence: str, day: date) -> tuple[date, date]:
    """The week (Monday to Monday) or calendar month holding `day`."""
    if cadence == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if cadence == "monthly":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    raise InvalidInput(f"cadence must be one of: {', '.join(CADENCES)}")


def last_ended(cadence: str, today: date) -> date:
    """A day of the latest period that has ended by `today` (UTC): what `issue` defaults to."""
    return period(cadence, today)[0] - timedelta(days=1)


def _instant(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Period:
    site_id: str
    cadence: str
    start: date
    end: date


def totals(conn: "Connection", p: Period) -> dict[str, int]:
    """Opening, the period's figures by kind and role, and closing (site's view: what HQ owes it)."""
    account = accounts.site_account(p.site_id)
    start, end = _instant(p.start), _instant(p.end)
    joined = LedgerLine.__table__.join(LedgerEntry.__table__, LedgerEntry.id == LedgerLine.entry_id)
    before = select(func.coalesce(func.sum(LedgerLine.amount_fen), 0)).select_from(joined).where(
        LedgerEntry.site_id == p.site_id, LedgerLine.account == account, LedgerEntry.posted_at < start)
    opening = -int(conn.scalar(before) or 0)
    grouped = conn.execute(select(LedgerEntry.kind, LedgerLine.role, func.sum(LedgerLine.amount_fen))
                           .select_from(joined).where(
        LedgerEntry.site_id == p.site_id, LedgerLine.account == account, LedgerEntry.posted_at >= start,
        LedgerEntry.posted_at < end).group_by(LedgerEntry.kind, LedgerLine.role))
    out = dict.fromkeys(TOTALS, 0)
    out["opening"] = opening
    for kind, role, amount in grouped:
        value = -int(amount)
        if role == "gross":
            out["refunds_gross" if kind == "refund" else "orders_gross"] += value
        else:
            out[TOTAL_OF_COLUMN[ROLE_COLUMN[role]]] += value
    out["closing"] = opening + sum(v for k, v in out.items() if k not in ("opening", "closing"))
    return out


def _lines_query(p: Period, dialect: str) -> Any:
    """One row per entry of the period: its amounts by column, from the site's side, in the order posted.

    The database formats the time, makes text safe for spreadsheets and sums
    the lines, so each row goes into the CSV as it comes (on PostgreSQL the
    database writes the CSV itself).
    """
    account = accounts.site_account(p.site_id)
    return (select(LedgerEntry.id, _stamp_sql(dialect), LedgerEntry.kind, _safe_text(LedgerEntry.source),
                   _safe_text(LedgerEntry.memo), *column_sums(account))
            .join(LedgerLine, LedgerLine.entry_id == LedgerEntry.id)
            .where(LedgerEntry.site_id == p.site_id, LedgerLine.account == account,
                   LedgerEntry.posted_at >= _instant(p.start), LedgerEntry.posted_at < _instant(p.end))
            .group_by(LedgerEntry.id, LedgerEntry.posted_at, LedgerEntry.kind, LedgerEntry.source, LedgerEntry.memo)
            .order_by(LedgerEntry.id))


def column_sums(account: str) -> list[Any]:
    """Per entry: the site account's lines summed by statement column, then the net, from the site's side."""
    return [*(func.sum(case((LedgerLine.role.in_([r for r, c in ROLE_COLUMN.items() if c == col]),
                             -LedgerLine.amount_fen), else_=0)).label(col) for col in COLUMNS),
            func.sum(-LedgerLine.amount_fen).label("net")]


def _stamp_sql(dialect: str) -> Any:
    """posted_at as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC); SQLite keeps it as `YYYY-MM-DD HH:MM:SS.ffffff` text."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", LedgerEntry.posted_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    return func.replace(LedgerEntry.posted_at, " ", "T").concat("Z")


def _safe_text(column: Any) -> Any:
    """Text a spreadsheet will not run as a formula (prefixed with '); an empty text as no value."""
    return case((func.substr(column, 1, 1).in_(FORMULA_START), literal("'").concat(column)),
                else_=func.nullif(column, ""))


def render(conn: "Connection", p: Period, figures: dict[str, int]) -> Iterator[bytes]:
    """The CSV (UTF-8 with BOM, LF): the summary, then one line per entry. Same ledger, same bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["kitctl settlement statement", "v1"])
    for key, value in (("site", p.site_id), ("cadence", p.cadence), ("period_start", p.start.isoformat()),
                       ("period_end_exclusive", p.end.isoformat()), ("timezone", "UTC"), ("currency", "CNY")):
        writer.writerow([key, value])
    for key in TOTALS:
        writer.writerow([f"{key}_fen", figures[key]])
    writer.writerow([])
    writer.writerow(LINE_HEADER)
    yield ("\ufeff" + buffer.getvalue()).encode()
    query = _lines_query(p, conn.dialect.name)
    if conn.dialect.name == "postgresql":
        yield from _copy_out(conn, query)
        return
    moved = 0
    for chunk in conn.execution_options(stream_results=True, yield_per=20_000).execute(query).partitions():
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(chunk)
        moved += sum(row[-1] for row in chunk)
        yield buffer.getvalue().encode()
    if figures["opening"] + moved != figures["closing"]:
        raise RuntimeError("statement lines do not add up to its closing balance")  # a bug, never a partial file


def _copy_out(conn: "Connection", query: Any) -> Iterator[bytes]:
    """PostgreSQL writes the lines as CSV itself (`COPY … TO STDOUT`): same quoting as Python's csv for this text.

    Values that would differ are made not to occur: no empty text (NULL instead,
    both write nothing) and no value `\\.` (text starting with a backslash is
    prefixed, as formulas are).
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.driver_connection.cursor()  # same connection, same transaction
    with cursor.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)", compiled.params) as copy:
        for block in copy:
            yield bytes(block)


def write(conn: "Connection", p: Period, figures: dict[str, int], out: IO[bytes] | None = None) -> str:
    """Write the CSV to `out` (if given); its SHA-256."""
    digest = hashlib.sha256()
    for chunk in render(conn, p, figures):
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    return digest.hexdigest()


def site_cadence(hq: "HQ", site_id: str) -> str:
    """The site's own cadence (set per site; monthly until an operator sets it)."""
    with hq.session() as s:
        site = s.get(Site, site_id)
        if site is None:
            raise ApiError(404, "not_found", f"site {site_id!r} has no licence")
        return site.settlement_cadence


def set_cadence(hq: "HQ", operator: str, site_id: str, cadence: str) -> dict[str, Any]:
    """Set the period the site's statements cover from now on; issued statements keep theirs. Audited."""
    if cadence not in CADENCES:
        raise InvalidInput(f"cadence must be one of: {', '.join(CADENCES)}")
    with hq.session() as s:
        site = s.get(Site, site_id, with_for_update=True)
        if site is None:
            raise ApiError(404, "not_found", f"site {site_id!r} has no licence")
        before, site.settlement_cadence = site.settlement_cadence, cadence
        audit.record(s, operator, "settlement.cadence", site_id, cadence=cadence, before=before)
        return {"site": site_id, "cadence": cadence}


def issue(hq: "HQ", operator: str, site_id: str, cadence: str | None, day: date | None = None) -> dict[str, Any]:
    """Issue the statement of the period holding `day` once it has ended; again, the same statement.

    Without a cadence, the site's own; without a day, the last period that has ended.
    """
    cadence = cadence or site_cadence(hq, site_id)
    day = day or last_ended(cadence, utcnow().date())
    start, end = period(cadence, day)
    if end > utcnow().date():
        raise ApiError(409, "period_open", f"the period {start}..{end} has not ended yet (UTC)")
    p = Period(site_id, cadence, start, end)
    with hq.read() as conn:
        if not events.licence_terms(conn, [site_id]):
            raise ApiError(404, "not_found", f"site {site_id!r} has no licence")
        figures = totals(conn, p)
        digest = write(conn, p, figures)
    existing = _find(hq, p)
    if existing is not None:
        return _same(existing, digest)
    try:
        with hq.session() as s:
            row = Statement(site_id=site_id, cadence=cadence, period_start=start, period_end=end, totals=figures,
                            csv_sha256=digest, issued_at=utcnow(), issued_by=operator)
            s.add(row)
            s.flush()
            audit.record(s, operator, "settlement.statement", site_id, statement=row.id, period_start=start.isoformat(),
                         period_end=end.isoformat(), closing_fen=figures["closing"])
            return statement_json(row)
    except IntegrityError:  # issued concurrently: the same statement
        existing = _find(hq, p)
        if existing is None:
            raise
        return _same(existing, digest)


def _find(hq: "HQ", p: Period) -> dict[str, Any] | None:
    with hq.session() as s:
        row = s.scalar(select(Statement).where(Statement.site_id == p.site_id, Statement.period_start == p.start,
                                               Statement.period_end == p.end))
        return statement_json(row) if row else None


def _same(existing: dict[str, Any], digest: str) -> dict[str, Any]:
    if existing["csv_sha256"] != digest:
        raise ApiError(409, "ledger_changed", f"statement {existing['id']} no longer matches the ledger")
    return existing


def statement_json(row: Statement) -> dict[str, Any]:
    return {"id": row.id, "site": row.site_id, "cadence": row.cadence, "period_start": row.period_start.isoformat(),
            "period_end": row.period_end.isoformat(), "totals": {k: int(row.totals[k]) for k in TOTALS},
            "csv_sha256": row.csv_sha256, "issued_at": iso(row.issued_at), "issued_by": row.issued_by,
            "response": row.response, "comment": row.comment, "responded_at": iso(row.responded_at),
            "resolution": row.resolution}


def get(hq: "HQ", statement_id: int, site_id: str | None = None) -> dict[str, Any]:
    """One statement; a site sees only its own (another's is `not_found`, not `forbidden`)."""
    with hq.session() as s:
        row = s.get(Statement, statement_id)
        if row is None or (site_id is not None and row.site_id != site_id):
            raise ApiError(404, "not_found", f"statement {statement_id} does not exist")
        return statement_json(row)


def list_statements(hq: "HQ", site_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    with hq.read() as conn:  # plain rows: the fleet page reads this on every load
        query = select(Statement).order_by(Statement.period_start.desc(), Statement.id.desc()).limit(limit)
        if site_id:
            query = query.where(Statement.site_id == site_id)
        return [statement_json(r) for r in conn.execute(query)]


def export(hq: "HQ", statement_id: int, out: IO[bytes], site_id: str | None = None) -> dict[str, Any]:
    """Write the statement's CSV to `out`; refuses (409) if it no longer hashes to what was issued."""
    meta = get(hq, statement_id, site_id)
    p = Period(meta["site"], meta["cadence"], date.fromisoformat(meta["period_start"]),
               date.fromisoformat(meta["period_end"]))
    with hq.read() as conn:
        digest = write(conn, p, meta["totals"], out)
    _same(meta, digest)
    return meta


def csv_bytes(hq: "HQ", statement_id: int, site_id: str | None = None) -> bytes:
    out = io.BytesIO()
    export(hq, statement_id, out, site_id)
    return out.getvalue()


def pdf_bytes(hq: "HQ", statement_id: int, site_id: str | None = None) -> bytes:
    """The statement as PDF, rendered from its CSV (checked against the issued hash): same statement, same bytes."""
    import tempfile

    from kitcore import statement_pdf

    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:  # a long statement's CSV waits on disk
        export(hq, statement_id, spool, site_id)
        spool.seek(0)
        text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
        return statement_pdf.render(statement_pdf.from_csv(text, statement_id))


def respond(hq: "HQ", site_id: str, statement_id: int, answer: str, comment: str | None) -> dict[str, Any]:
    """The site's finance role confirms, or disputes with a comment; once."""
    if answer not in ("confirmed", "disputed"):
        raise InvalidInput("answer must be 'confirmed' or 'disputed'")
    comment = _comment(comment, required=answer == "disputed")
    with hq.session() as s:
        row = s.scalar(select(Statement).where(Statement.id == statement_id).with_for_update())
        if row is None or row.site_id != site_id:
            raise ApiError(404, "not_found", f"statement {statement_id} does not exist")
        if row.response is not None:
            raise ApiError(409, "already_answered", f"statement {statement_id} is already {row.response}")
        row.response, row.comment, row.responded_at = answer, comment, utcnow()
        audit.record(s, "site", f"settlement.statement.{answer}", site_id, statement=statement_id,
                     comment=comment)
        return statement_json(row)


def resolve(hq: "HQ", operator: str, statement_id: int, note: str, adjustment_fen: int | None = None) -> dict[str, Any]:
    """Close a dispute; an adjustment (not 0), if any, is posted now (it shows in the current period's statement)."""
    note = _comment(note, required=True) or ""
    if adjustment_fen is not None and abs(adjustment_fen) > events.MAX_ADJUSTMENT:
        raise InvalidInput(f"adjustment must be a whole number of fen up to {events.MAX_ADJUSTMENT} either way")
    with hq.session() as s:
        row = s.scalar(select(Statement).where(Statement.id == statement_id).with_for_update())
        if row is None:
            raise ApiError(404, "not_found", f"statement {statement_id} does not exist")
        if row.response != "disputed":
            raise ApiError(409, "not_disputed", f"statement {statement_id} is {row.response or 'not answered'}, "
                           "not disputed")
        if adjustment_fen:
            events.post_adjustment(s.connection(), operator, row.site_id, adjustment_fen,
                                   f"statement {statement_id}: {note}"[:500], utcnow())
        row.response, row.resolution = "resolved", note
        audit.record(s, operator, "settlement.statement.resolve", row.site_id, statement=statement_id, note=note,
                     adjustment_fen=adjustment_fen)
        return statement_json(row)


def _comment(text: str | None, required: bool) -> str | None:
    text = (text or "").strip(" ")
    if required and not text:
        raise InvalidInput("a dispute needs a comment saying what is wrong")
    if len(text) > MAX_COMMENT or any(ord(c) < 32 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in text):
        raise InvalidInput(f"comment must be at most {MAX_COMMENT} characters of text")
    return text or None
