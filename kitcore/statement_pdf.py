"""A settlement statement as PDF: the summary and the entry lines, in Chinese and English.

HQ renders it from the statement's CSV (the exact record, checked against its
hash); the site renders it from its copy of HQ's entries. Both give the same
inputs here, so the same statement gives the same bytes: reportlab's
invariant mode fixes the creation date and makes the document ID a digest of
the content, and nothing else varies.

Text is set in Adobe's CID font STSong-Light (UniGB-UCS2-H), which reportlab
knows without a font file: the PDF names the font and the reader supplies the
glyphs (every PDF reader with Chinese support has them), so the file stays
small and no font is shipped with the kit. The CSV stays the record; the PDF
is its printable form, and lists at most `MAX_LINES` lines (a note says how
many more the CSV holds).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

FONT = "STSong-Light"
MAX_LINES = 5000
TOTALS = ("opening", "orders_gross", "refunds_gross", "hq_cost", "hq_share", "fees", "adjustments", "payouts",
          "closing")
TOTAL_LABELS = {"opening": "期初余额 opening", "orders_gross": "订单总额 orders gross",
                "refunds_gross": "退款总额 refunds gross", "hq_cost": "总部成本 HQ cost", "hq_share": "总部分成 HQ share",
                "fees": "费用 fees", "adjustments": "调整 adjustments", "payouts": "提现 payouts",
                "closing": "期末余额 closing"}
# the entry line: CSV column, heading, x of its left (text) or right (amount) edge, amount?
LINE_COLUMNS: tuple[tuple[str, str, float, bool], ...] = (
    ("entry_id", "编号 id", 30, False), ("posted_at", "时间 posted (UTC)", 80, False), ("kind", "类型 kind", 190, False),
    ("reference", "参考 reference", 245, False), ("gross_fen", "销售额 gross", 470, True),
    ("hq_cost_fen", "成本 cost", 530, True), ("hq_share_fen", "分成 share", 590, True),
    ("fees_fen", "费用 fees", 645, True), ("adjustment_fen", "调整 adj.", 700, True),
    ("payout_fen", "提现 payout", 755, True), ("net_fen", "净额 net", 812, True))
PAGE = (842.0, 595.0)  # A4 landscape, points
TOP, BOTTOM, STEP = 555.0, 40.0, 10.5
REFERENCE_CHARS = 34
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\\")  # what the CSV prefixes with ' (hq.ledger.statements)


@dataclass(frozen=True)
class StatementDoc:
    """What a statement PDF shows: the heading fields, the totals (fen), the lines (CSV columns by name)."""

    site: str
    cadence: str
    period_start: str
    period_end: str
    totals: dict[str, int]
    lines: Iterable[dict[str, Any]]
    statement_id: int | None = None


def yuan(fen: int) -> str:
    """Fen as signed yuan with thousands separators: -705 → -7.05."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def _font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _header(c: "Canvas", doc: StatementDoc) -> float:
    c.setFont(FONT, 14)
    c.drawString(30, TOP, f"结算对账单 Settlement statement — {doc.site}")
    c.setFont(FONT, 9)
    number = f"No. {doc.statement_id} · " if doc.statement_id is not None else ""
    c.drawString(30, TOP - 18, f"{number}{doc.cadence} · {doc.period_start} – {doc.period_end} (UTC, 不含结束日 end "
                               "exclusive) · 金额单位 元 amounts in yuan (CNY)")
    y = TOP - 40
    for key in TOTALS:
        c.drawString(30, y, TOTAL_LABELS[key])
        c.drawRightString(300, y, yuan(doc.totals.get(key, 0)))
        y -= 12
    return y - 10


def _line_heading(c: "Canvas", y: float) -> float:
    c.setFont(FONT, 7.5)
    for _, label, x, amount in LINE_COLUMNS:
        (c.drawRightString if amount else c.drawString)(x, y, label)
    c.line(30, y - 3, PAGE[0] - 30, y - 3)
    return y - STEP - 2


def _cell(line: dict[str, Any], name: str, amount: bool) -> str:
    value = line.get(name)
    if amount:
        return yuan(int(value or 0))
    text = str(value if value is not None else "")
    if name == "posted_at":
        return text[:19].replace("T", " ")
    if name == "reference":
        text = text or str(line.get("source") or "")
        return text if len(text) <= REFERENCE_CHARS else text[:REFERENCE_CHARS - 1] + "…"
    return text


def render(doc: StatementDoc, max_lines: int = MAX_LINES) -> bytes:
    """The PDF's bytes; the same statement, the same bytes."""
    from reportlab.pdfgen.canvas import Canvas

    _font()
    out = io.BytesIO()
    c = Canvas(out, pagesize=PAGE, invariant=1, pageCompression=1)
    c.setTitle(f"Settlement statement {doc.site} {doc.period_start}")
    c.setAuthor("kitctl HQ")
    c.setCreator("kitctl")
    y = _line_heading(c, _header(c, doc))
    shown = more = 0
    for line in doc.lines:
        if shown >= max_lines:
            more += 1
            continue
        if y < BOTTOM:
            c.showPage()
            y = _line_heading(c, TOP)
        for name, _, x, amount in LINE_COLUMNS:
            (c.drawRightString if amount else c.drawString)(x, y, _cell(line, name, amount))
        y -= STEP
        shown += 1
    if more:
        if y < BOTTOM:
            c.showPage()
            y = TOP
        c.setFont(FONT, 9)
        c.drawString(30, y - 4, f"另有 {more:,} 行见 CSV · {more:,} more lines are in the statement's CSV")
    c.save()
    return out.getvalue()


def from_csv(text: IO[str], statement_id: int | None = None) -> StatementDoc:
    """A statement CSV (docs/settlement.md: the summary, a blank line, the entry lines), read as it streams
    (open it with encoding `utf-8-sig`), as what the PDF shows."""
    import csv

    rows = csv.reader(text)
    next(rows)  # the format line
    summary: dict[str, str] = {}
    for row in rows:
        if not row:
            break
        summary[row[0]] = row[1]
    header: Sequence[str] = next(rows)
    lines = ({name: _unguarded(value) for name, value in zip(header, row)} for row in rows)
    totals = {key: int(summary[f"{key}_fen"]) for key in TOTALS}
    return StatementDoc(summary["site"], summary["cadence"], summary["period_start"],
                        summary["period_end_exclusive"], totals, lines, statement_id)


def _unguarded(text: str) -> str:
    """The CSV's text without the `'` that keeps a spreadsheet from running it: the PDF shows what was written."""
    return text[1:] if text[:1] == "'" and text[1:2] in FORMULA_START else text
