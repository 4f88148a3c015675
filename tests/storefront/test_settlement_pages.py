"""The finance role's statements page: HQ's statements with their lines, and the answer left for the agent."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from sitedb.engine import make_engine
from sitedb.tables import audit_log, settlement_statements
from storefront.admin_users import create_admin
from tests.storefront.http import form_token
from tests.storefront.support import add_statement, book_entries, seed
from tests.storefront.test_app_inprocess import _app

OCT = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)
pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


def _statement(url: str, statement_id: int = 7, complete: bool = True) -> None:
    book_entries(url, [
        {"id": 1, "posted_at": OCT, "kind": "order", "source": "hq_1", "reference": "O-1", "gross_fen": 4_700,
         "hq_cost_fen": -4_700, "hq_share_fen": -705},
        {"id": 2, "posted_at": OCT, "kind": "base_fee", "source": "s:2026", "reference": "base fee 2026 (pro)",
         "fees_fen": -500_000},
        {"id": 3, "posted_at": datetime(2026, 11, 2, tzinfo=timezone.utc), "kind": "order", "source": "hq_3",
         "reference": "O-3", "gross_fen": 1, "hq_cost_fen": 0, "hq_share_fen": 0},  # next period: not a line
    ])
    closing = -705 - 500_000 + (0 if complete else -1)
    add_statement(url, statement_id, "2026-10-01", "2026-11-01",
                  {"orders_gross": 4_700, "hq_cost": -4_700, "hq_share": -705, "fees": -500_000, "closing": closing})


def _signed_in(tmp_path, url, role="finance", lang="zh-CN"):  # type: ignore[no-untyped-def]
    password = create_admin(url, f"fin-{role}", role=role, migrate=False)
    client, _ = _app(tmp_path / role, url)
    client.cookies.set("kit_lang", lang)
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": token, "username": f"fin-{role}", "password": password}).status_code == 303
    return client


def _row(url: str, statement_id: int = 7):  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(settlement_statements).where(settlement_statements.c.id == statement_id)).one()
    finally:
        engine.dispose()


def test_finance_sees_the_statement_with_its_lines_and_confirms_it(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _statement(url)
    client = _signed_in(tmp_path, url)
    listing = client.get("/admin/settlement").text
    assert 'href="/admin/settlement/7"' in listing and "-¥5,007.05" in listing and "待确认" in listing
    page = client.get("/admin/settlement/7").text
    assert 'data-entry="1"' in page and 'data-entry="2"' in page and 'data-entry="3"' not in page
    assert "O-1" in page and "-¥7.05" in page and 'id="statement-reconciled"' in page and "已全部同步" in page
    answered = client.post("/admin/settlement/7/confirm", data={"csrf": form_token(page)})
    assert answered.status_code == 200 and "确认待发送至总部" in answered.text and 'id="confirm"' not in answered.text
    row = _row(url)
    assert (row.answer, row.answer_state, row.answered_by, row.answer_comment) == \
        ("confirmed", "pending", "admin:fin-finance", None)
    again = client.post("/admin/settlement/7/dispute", data={"csrf": form_token(page), "comment": "late"})
    assert again.status_code == 409 and "已经确认或提出过异议" in again.text
    assert _row(url).answer == "confirmed"
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(audit_log.c.action).where(audit_log.c.action == "statement_confirmed")).all()
    engine.dispose()


def test_a_dispute_needs_a_reason_and_the_page_speaks_english(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _statement(url, complete=False)
    client = _signed_in(tmp_path, url, role="admin", lang="en")
    page = client.get("/admin/settlement/7").text
    assert "some are still coming" in page and "Awaiting your answer" in page
    for comment, status in (("   ", 422), ("two\nlines", 422), ("x" * 1001, 422)):
        refused = client.post("/admin/settlement/7/dispute", data={"csrf": form_token(page), "comment": comment})
        assert refused.status_code == status and 'id="e-comment"' in refused.text
        assert _row(url).answer is None  # nothing written
    disputed = client.post("/admin/settlement/7/dispute", data={"csrf": form_token(page), "comment": "订单 O-9 缺失"})
    assert disputed.status_code == 200 and "Dispute on its way to HQ" in disputed.text
    assert (_row(url).answer, _row(url).answer_comment) == ("disputed", "订单 O-9 缺失")
    assert client.get("/admin/settlement/8").status_code == 404
    assert client.post("/admin/settlement/8/confirm", data={"csrf": form_token(page)}).status_code == 404
    assert client.get("/admin/settlement/99999999999999999999").status_code in (404, 422)


def test_after_hq_refused_an_answer_the_page_says_why_and_finance_may_answer_again(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _statement(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(settlement_statements.update().values(answer="confirmed", answer_state="refused",
                                                           answer_error="HTTP 404 not_found: statement 7 does not exist"))
    engine.dispose()
    client = _signed_in(tmp_path, url)
    page = client.get("/admin/settlement/7").text
    assert "总部未接受确认" in page and "statement 7 does not exist" in page and 'id="confirm"' in page
    assert client.post("/admin/settlement/7/confirm", data={"csrf": form_token(page)}).status_code == 200
    assert _row(url).answer_state == "pending"


def test_the_operator_is_not_shown_the_statements(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _statement(url)
    client = _signed_in(tmp_path, url, role="operator")
    assert "/admin/settlement" not in client.get("/admin").text
    assert client.get("/admin/settlement/7").status_code == 403


def test_finance_downloads_the_statement_as_pdf_once_every_line_is_here(tmp_path):
    from tests.hq.test_hq_statement_pdf import text_of

    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    _statement(url)
    add_statement(url, 8, "2026-11-01", "2026-12-01", {"orders_gross": 1, "closing": -505_705})  # O-3 and one more
    client = _signed_in(tmp_path, url)
    assert 'href="/admin/settlement/7/pdf"' in client.get("/admin/settlement/7").text
    pdf = client.get("/admin/settlement/7/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]
    text = text_of(pdf.content)
    assert "结算对账单" in text and "2026-10-01" in text and "-5,007.05" in text and "O-1" in text and "-7.05" in text
    assert "O-3" not in text  # the next period's entry
    assert client.get("/admin/settlement/7/pdf").content == pdf.content
    assert 'href="/admin/settlement/8/pdf"' not in client.get("/admin/settlement/8").text
    incomplete = client.get("/admin/settlement/8/pdf")
    assert incomplete.status_code == 409 and "稍后可下载" in incomplete.text
    assert client.get("/admin/settlement/9/pdf").status_code == 404
    operator = _signed_in(tmp_path, url, role="operator")
    assert operator.get("/admin/settlement/7/pdf").status_code == 403
