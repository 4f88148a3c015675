"""Settlement through the agent against the real HQ: statements and ledger entries in, answers out.

The site's statement lines and its revenue page are HQ's figures to the fen;
the finance role's answer reaches HQ through the agent (never a call from the
storefront), and HQ's refusal comes back to the page. SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.hq_client import HQClient, HQError
from agent.settlement import SettlementSync
from hq.ledger import events, statements
from sitedb.models import Order
from sitedb.tables import settlement_statements, site_state
from storefront import settlement as site_settlement
from storefront.admin import reports
from tests.agent.helpers import write_orders

AMOUNTS = ("gross_fen", "hq_cost_fen", "hq_share_fen", "fees_fen", "adjustment_fen", "payout_fen", "net_fen")
PAST = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


def _csv_lines(hq, statement_id: int) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    text = statements.csv_bytes(hq.service, statement_id).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text.split("\n\n", 1)[1])))


def test_statement_lines_and_revenue_page_agree_with_hqs_statement_to_the_fen(hq, started, engine, site, monkeypatch):
    sku = f"top-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=4700, stock_kind="direct_topup")
    at_hq_price = write_orders(engine, 1, sku, unit_price_cents=4700)
    marked_up = write_orders(engine, 2, sku, unit_price_cents=5099)
    assert started.forwarder.forward_once().decided == 3
    with Session(engine) as s:
        booked = {o.id: o.hq_order_id for o in s.scalars(select(Order))}
    events.refund(hq.service, "op", booked[marked_up[1]], "买家取消")
    later = datetime.now(timezone.utc) + timedelta(days=40)  # the month has ended; the feed's cursor moves past
    monkeypatch.setattr(statements, "utcnow", lambda: later)
    monkeypatch.setattr("hq.ledger.feed.utcnow", lambda: later)
    issued = statements.issue(hq.service, "op", site.site_id, "monthly", date.today())

    outcome = started.settlement.run()
    assert (outcome.statements, outcome.entries) == (1, 4)
    hq_lines = _csv_lines(hq, issued["id"])
    with engine.connect() as conn:
        view = site_settlement.statement(conn, issued["id"])
        assert conn.scalar(select(site_state.c.ledger_cursor)) == int(hq_lines[-1]["entry_id"])
    assert view is not None and view.complete and view.totals == issued["totals"]
    assert [[x.id, *(getattr(x, a) for a in AMOUNTS)] for x in view.lines] == \
        [[int(line["entry_id"]), *(int(line[a]) for a in AMOUNTS)] for line in hq_lines]

    with Session(engine) as s:
        report = reports.revenue(s, "day", days=31, now=later - timedelta(days=39))
    totals = issued["totals"]
    grand = report.grand
    assert (grand.gross_cents, grand.cost_cents, grand.share_cents, grand.net_cents) == (
        totals["orders_gross"] + totals["refunds_gross"], totals["hq_cost"], totals["hq_share"],
        totals["closing"] - totals["opening"])
    assert sorted((x.id, x.gross_fen, x.hq_cost_fen, x.hq_share_fen, x.net_fen) for x in report.lines) == sorted(
        (int(line["entry_id"]), *(int(line[a]) for a in ("gross_fen", "hq_cost_fen", "hq_share_fen", "net_fen")))
        for line in hq_lines)
    sale_at_hq_price = next(x for x in report.lines if x.order_id == at_hq_price[0])
    assert sale_at_hq_price.net_fen == sale_at_hq_price.hq_share_fen == -564  # pro: 12 % of 47.00, nothing else
    refund = next(x for x in report.lines if x.kind == "refund")
    assert refund.order_id == marked_up[1]  # found through HQ's order id: a refund's reference is its reason
    assert report.awaiting_orders == 0
    assert started.settlement.run().entries == 0  # entries are copied once


def _weekly_statements(hq, site_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with hq.service.connection() as conn:
        events.order_paid(conn, [events.PaidOrder(site_id, f"hq_{site_id}_{i}", f"o{i}", 1, 5_000, 4_000, "game")
                                 for i in range(2)], at=PAST)
        events.order_paid(conn, [events.PaidOrder(site_id, f"hq_{site_id}_9", "o9", 1, 5_000, 4_000, "game")],
                          at=PAST + timedelta(days=7))
    return [statements.issue(hq.service, "op", site_id, "weekly", (PAST + timedelta(days=d)).date()) for d in (0, 7)]


def _local(engine, statement_id: int):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(settlement_statements).where(settlement_statements.c.id == statement_id)).one()


def test_answers_reach_hq_through_the_agent_and_refusals_come_back(hq, started, engine, site):
    first, second = _weekly_statements(hq, site.site_id)
    assert started.settlement.run().statements == 2
    with engine.begin() as conn:
        site_settlement.answer(conn, first["id"], "confirmed", "", "admin:fin")
        site_settlement.answer(conn, second["id"], "disputed", "订单 o7 缺失", "admin:fin")
    statements.respond(hq.service, site.site_id, second["id"], "confirmed", None)  # answered at HQ meanwhile

    outcome = started.settlement.run()
    assert (outcome.answers_sent, outcome.answers_refused) == (1, 1)
    assert statements.get(hq.service, first["id"])["response"] == "confirmed"
    sent, refused = _local(engine, first["id"]), _local(engine, second["id"])
    assert (sent.answer_state, sent.hq_response) == ("sent", "confirmed")
    assert refused.answer_state == "refused" and "already_answered" in refused.answer_error
    assert refused.hq_response == "confirmed"  # HQ's record, read back on the same run
    assert statements.get(hq.service, second["id"])["comment"] is None  # the dispute changed nothing at HQ



def test_a_dispute_resolved_at_hq_shows_on_the_site(hq, started, engine, site):
    _weekly_statements(hq, site.site_id)
    third = statements.issue(hq.service, "op", site.site_id, "weekly", (PAST + timedelta(days=14)).date())
    started.settlement.run()
    with engine.begin() as conn:
        site_settlement.answer(conn, third["id"], "disputed", "少了一笔", "admin:fin")
    started.settlement.run()
    statements.resolve(hq.service, "op", third["id"], "credited", 300)
    started.settlement.run()
    resolved = _local(engine, third["id"])
    assert (resolved.hq_response, resolved.hq_comment, resolved.hq_resolution) == ("resolved", "少了一笔", "credited")


def test_an_answer_waits_while_hq_is_away_and_goes_when_it_is_back(hq, started, engine, site):
    first, _ = _weekly_statements(hq, site.site_id)
    started.settlement.run()
    with engine.begin() as conn:
        site_settlement.answer(conn, first["id"], "confirmed", "核对无误", "admin:fin")
    away = SettlementSync(engine, HQClient("http://127.0.0.1:9", started.settlement.client.token, timeout=1,
                                           connect_timeout=0.2), backoff_base=0.01, backoff_cap=0.02)
    with pytest.raises(HQError) as failed:
        away.run()
    assert failed.value.kind == "connect"
    waiting = _local(engine, first["id"])
    assert (waiting.answer_state, waiting.answer_attempts) == ("pending", 1) and waiting.answer_next_at is not None
    assert statements.get(hq.service, first["id"])["response"] is None
    with engine.begin() as conn:  # the back-off has passed
        conn.execute(settlement_statements.update().values(answer_next_at=None))
    assert started.settlement.run().answers_sent == 1
    assert statements.get(hq.service, first["id"])["comment"] == "核对无误"


def test_a_revoked_licence_keeps_the_answer_for_later(hq, started, engine, site):
    first, _ = _weekly_statements(hq, site.site_id)
    started.settlement.run()
    with engine.begin() as conn:
        site_settlement.answer(conn, first["id"], "confirmed", "", "admin:fin")
    hq.revoke(site.site_id)
    with pytest.raises(HQError):
        started.settlement.run()  # statements can no longer be read either
    kept = _local(engine, first["id"])
    assert kept.answer_state == "pending" and kept.answer_attempts == 1
    assert statements.get(hq.service, first["id"])["response"] is None
