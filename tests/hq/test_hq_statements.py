"""Statements: figures and order lines per period, CSV, issued once and byte-identical, answered once by the site."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone
from typing import Iterator

import pytest

from hq.clock import utcnow
from hq.errors import ApiError
from hq.ledger import events, statements
from hq.service import HQ
from kitcore.errors import InvalidInput
from tests.hq.ledger_support import HQ_PRICE, open_settlement_hq

NOV = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_settlement_hq(tmp_path / "hq", db_url)
    yield service
    service.close()


def _paid(hq: HQ, order_id: str, gross: int, at: datetime, site: str = "site-a") -> None:
    with hq.connection() as conn:
        events.order_paid(conn, [events.PaidOrder(site, f"hq_{order_id}", order_id, 1, gross, HQ_PRICE, "game")], at=at)


def _sections(data: bytes) -> tuple[dict[str, str], list[dict[str, str]]]:
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")
    head, _, body = text[1:].partition("\n\n")
    summary = {row[0]: row[1] for row in csv.reader(io.StringIO(head)) if row}
    return summary, list(csv.DictReader(io.StringIO(body)))


@pytest.mark.parametrize("cadence,day,start,end", [
    ("monthly", date(2026, 11, 30), date(2026, 11, 1), date(2026, 12, 1)),
    ("monthly", date(2026, 12, 1), date(2026, 12, 1), date(2027, 1, 1)),
    ("weekly", date(2026, 11, 11), date(2026, 11, 9), date(2026, 11, 16)),
    ("weekly", date(2026, 11, 9), date(2026, 11, 9), date(2026, 11, 16)),
])
def test_periods(cadence, day, start, end):
    assert statements.period(cadence, day) == (start, end)


def test_unknown_cadence_is_refused():
    with pytest.raises(InvalidInput, match="cadence"):
        statements.period("daily", date(2026, 11, 1))


def test_monthly_statement_figures_lines_and_csv(hq):
    _paid(hq, "before", 1000, NOV - timedelta(days=30))  # October: the opening
    _paid(hq, "o1", 4700, NOV)
    _paid(hq, "o2", 2000, NOV + timedelta(hours=1))
    _paid(hq, "other-site", 5000, NOV, site="site-b")
    events.refund(hq, "op", "hq_o2", "buyer cancelled", at=NOV + timedelta(hours=2))
    _paid(hq, "december", 3000, datetime(2026, 12, 1, tzinfo=timezone.utc))
    issued = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 15))
    opening = 1000 - HQ_PRICE - 120
    assert issued["totals"] == {
        "opening": opening, "orders_gross": 6700, "refunds_gross": -2000, "hq_cost": -HQ_PRICE,
        "hq_share": -564, "fees": 0, "adjustments": 0, "payouts": 0, "closing": opening + 4700 - HQ_PRICE - 564}
    data = statements.csv_bytes(hq, issued["id"])
    summary, lines = _sections(data)
    assert summary["site"] == "site-a" and summary["period_start"] == "2026-11-01"
    assert int(summary["closing_fen"]) == issued["totals"]["closing"]
    assert [(r["kind"], r["source"], r["reference"], r["net_fen"]) for r in lines] == [
        ("order", "hq_o1", "o1", str(4700 - HQ_PRICE - 564)), ("order", "hq_o2", "o2", str(2000 - HQ_PRICE - 240)),
        ("refund", "hq_o2", "buyer cancelled", str(-(2000 - HQ_PRICE - 240)))]
    again = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 1))
    assert again == issued and statements.csv_bytes(hq, issued["id"]) == data


def test_next_opening_is_this_closing(hq):
    _paid(hq, "o1", 4700, NOV - timedelta(days=30))
    _paid(hq, "o2", 900, NOV)
    octo = statements.issue(hq, "op", "site-a", "monthly", date(2026, 10, 1))
    nov = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 1))
    assert nov["totals"]["opening"] == octo["totals"]["closing"] != 0


def test_an_open_period_and_an_unknown_site_are_refused(hq):
    with pytest.raises(ApiError, match="not ended"):
        statements.issue(hq, "op", "site-a", "weekly", utcnow().date())
    with pytest.raises(ApiError, match="no licence"):
        statements.issue(hq, "op", "nobody", "monthly", date(2026, 11, 1))


def test_an_issued_statement_that_no_longer_matches_is_refused_on_export(hq):
    """Defence in depth: if the ledger under an issued statement changed, HQ says so instead of exporting it."""
    from sqlalchemy import update

    from hq.models import Statement

    _paid(hq, "o1", 4700, NOV)
    issued = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 1))
    with hq.session() as s:
        s.execute(update(Statement).values(csv_sha256="0" * 64))
    with pytest.raises(ApiError, match="no longer matches"):
        statements.csv_bytes(hq, issued["id"])


def test_formula_like_text_is_quoted_for_spreadsheets(hq):
    _paid(hq, "o1", 4700, NOV)
    events.refund(hq, "op", "hq_o1", "=HYPERLINK(\"x\")", at=NOV + timedelta(hours=1))
    issued = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 1))
    _, lines = _sections(statements.csv_bytes(hq, issued["id"]))
    assert lines[1]["reference"].startswith("'=")


def test_site_confirms_or_disputes_once_and_hq_resolves_by_adjustment(hq):
    _paid(hq, "o1", 4700, NOV)
    _paid(hq, "o1", 4700, NOV - timedelta(days=40), site="site-b")
    nov = statements.issue(hq, "op", "site-a", "monthly", date(2026, 11, 1))
    octo = statements.issue(hq, "op", "site-b", "monthly", date(2026, 9, 30))
    with pytest.raises(ApiError, match="does not exist"):  # another site's statement
        statements.respond(hq, "site-b", nov["id"], "confirmed", None)
    with pytest.raises(InvalidInput, match="comment"):
        statements.respond(hq, "site-a", nov["id"], "disputed", "  ")
    disputed = statements.respond(hq, "site-a", nov["id"], "disputed", "order o9 is missing")
    assert disputed["response"] == "disputed" and disputed["comment"] == "order o9 is missing"
    with pytest.raises(ApiError, match="already disputed"):
        statements.respond(hq, "site-a", nov["id"], "confirmed", None)
    with pytest.raises(ApiError, match="not disputed"):
        statements.resolve(hq, "op", octo["id"], "nothing to resolve")
    resolved = statements.resolve(hq, "op", nov["id"], "o9 credited", adjustment_fen=500)
    assert resolved["response"] == "resolved" and resolved["totals"] == nov["totals"]
    from hq.ledger.payouts import balance

    assert balance(hq, "site-a")["balance_fen"] == nov["totals"]["closing"] + 500
    assert statements.csv_bytes(hq, nov["id"])  # still exports: the adjustment lands in a later period
    assert statements.respond(hq, "site-b", octo["id"], "confirmed", None)["response"] == "confirmed"


@pytest.mark.postgres
def test_the_csv_is_the_same_on_sqlite_and_postgresql(tmp_path, hq_pg_server, hq_pg_template):
    """The database formats times and sums lines: both dialects must write the same bytes."""
    from tests.hq import pg

    def statement_on(database_url: str | None, name: str) -> bytes:
        service = open_settlement_hq(tmp_path / name, database_url)
        try:
            _paid(service, "o1", 4700, NOV.replace(microsecond=123456))
            _paid(service, "o2", 999, NOV + timedelta(days=3, seconds=1))
            events.refund(service, "op", "hq_o1", "退款, \"quoted\"", at=NOV + timedelta(days=4))
            events.refund(service, "op", "hq_o2", "-1 formula-like", at=NOV + timedelta(days=5))
            _paid(service, "o3", 0, NOV + timedelta(days=6))
            events.refund(service, "op", "hq_o3", "\\.", at=NOV + timedelta(days=7))  # COPY's end marker
            issued = statements.issue(service, "op", "site-a", "monthly", NOV.date())
            return statements.csv_bytes(service, issued["id"])
        finally:
            service.close()

    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url:
        on_postgres = statement_on(url, "pg")
    on_sqlite = statement_on(None, "sqlite")
    assert on_sqlite == on_postgres
    assert b"2026-11-10T12:00:00.123456Z" in on_sqlite and "'-1 formula-like".encode() in on_sqlite
    assert b'"\xe9\x80\x80\xe6\xac\xbe, ""quoted"""' in on_sqlite and b",'\\.," in on_sqlite
