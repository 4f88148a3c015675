"""Statements as PDF: the CSV's figures and lines in Chinese and English; the same statement, the same bytes."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest

from hq.errors import ApiError
from hq.ledger import events, statements
from kitcore import statement_pdf
from tests.hq.test_hq_statements import NOV, _paid, hq  # noqa: F401 (hq: the fixture)


def text_of(pdf: bytes) -> str:
    from pypdf import PdfReader

    assert pdf.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_pdf_shows_the_statements_figures_and_lines_in_chinese(hq):
    _paid(hq, "订单-1", 4700, NOV)
    _paid(hq, "o2", 2000, NOV + timedelta(hours=1))
    events.refund(hq, "op", "hq_o2", "买家取消", at=NOV + timedelta(hours=2))
    events.adjust(hq, "op", "site-a", 1234, "=少算的运费", at=NOV + timedelta(hours=3))
    issued = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 15))
    text = text_of(statements.pdf_bytes(hq, issued["id"]))
    totals = issued["totals"]
    assert "结算对账单" in text and "site-a" in text and "2026-11-01" in text and f"No. {issued['id']}" in text
    assert "期末余额" in text and statement_pdf.yuan(totals["closing"]) in text
    assert statement_pdf.yuan(totals["hq_share"]) in text and "47.00" in text and "-20.00" in text  # refund's gross
    assert "订单-1" in text and "买家取消" in text and "12.34" in text
    assert "=少算的运费" in text and "'=少算的运费" not in text  # the spreadsheet guard is the CSV's, not the PDF's


def test_a_statement_gives_the_same_pdf_every_time(hq):
    _paid(hq, "o1", 4700, NOV)
    issued = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 15))
    first = statements.pdf_bytes(hq, issued["id"])
    assert statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 1)) == issued
    assert statements.pdf_bytes(hq, issued["id"]) == first
    assert b"/CreationDate (D:2000" in first  # reportlab's invariant date, not the time of rendering


def test_a_site_gets_only_its_own_pdf(hq):
    _paid(hq, "o1", 4700, NOV)
    issued = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 15))
    with pytest.raises(ApiError, match="does not exist"):
        statements.pdf_bytes(hq, issued["id"], "site-b")
    assert statements.pdf_bytes(hq, issued["id"], "site-a").startswith(b"%PDF-")


def test_a_long_statement_lists_the_first_lines_and_says_how_many_more():
    lines = [{"entry_id": n, "posted_at": "2026-11-10T12:00:00.000000Z", "kind": "order", "source": f"hq_{n}",
              "reference": f"o{n}", "gross_fen": 100, "net_fen": 100} for n in range(1, 131)]
    doc = statement_pdf.StatementDoc("site-a", "weekly", "2026-11-09", "2026-11-16", {"closing": 13_000}, lines)
    text = text_of(statement_pdf.render(doc, max_lines=100))
    assert "o100\n" in text and "o101\n" not in text and "30 more lines are in the statement's CSV" in text


@pytest.mark.parametrize("fen,shown", [(0, "0.00"), (-705, "-7.05"), (123_456_789, "1,234,567.89"), (-5, "-0.05")])
def test_yuan(fen, shown):
    assert statement_pdf.yuan(fen) == shown
