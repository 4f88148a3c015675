"""The settlement API over HTTP: the site reads and answers its statements and asks for payouts; operators decide."""

from __future__ import annotations

from datetime import datetime, timezone

from hq.ledger import events
from tests.hq.helpers import auth, http, order, post_orders
from tests.hq.test_hq_statement_pdf import text_of

PAST = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


def _settle_setup(hq_server):
    hq_server.seed_item("game-100", price_cents=4000, stock_kind="direct_topup")
    tokens = {site: hq_server.issue_licence(site) for site in ("site-a", "site-b")}
    with hq_server.service.connection() as conn:
        events.order_paid(conn, [events.PaidOrder("site-a", f"hq_{i}", f"o{i}", 1, 50_000, 4000, "game")
                                 for i in range(3)], at=PAST)
    return tokens


def _admin(hq_server, method, path, **kw):
    return http.request(method, f"{hq_server.url}/v1/admin/settlement{path}", headers=hq_server.admin_headers(), **kw)


def _site(hq_server, token, method, path, **kw):
    return http.request(method, f"{hq_server.url}/v1/settlement{path}", headers=auth(token), **kw)


def test_statement_issued_read_answered_and_payout_approved(hq_server):
    tokens = _settle_setup(hq_server)
    net = 3 * (50_000 - 4000 - 6000)  # pro: 12%
    issued = _admin(hq_server, "POST", "/statements", json={"site": "site-a", "cadence": "monthly", "day": "2026-10-31"})
    assert issued.status_code == 200, issued.text
    statement = issued.json()
    assert statement["totals"]["closing"] == net and statement["period_end"] == "2026-11-01"
    listed = _site(hq_server, tokens["site-a"], "GET", "/statements").json()
    assert [s["id"] for s in listed] == [statement["id"]]
    assert _site(hq_server, tokens["site-b"], "GET", "/statements").json() == []
    assert _site(hq_server, tokens["site-b"], "GET", f"/statements/{statement['id']}").status_code == 404
    csv_site = _site(hq_server, tokens["site-a"], "GET", f"/statements/{statement['id']}/csv")
    csv_admin = _admin(hq_server, "GET", f"/statements/{statement['id']}/csv")
    assert csv_site.status_code == 200 and csv_site.headers["content-type"].startswith("text/csv")
    assert csv_site.content == csv_admin.content and b"hq_2" in csv_site.content
    pdf_site = _site(hq_server, tokens["site-a"], "GET", f"/statements/{statement['id']}/pdf")
    pdf_admin = _admin(hq_server, "GET", f"/statements/{statement['id']}/pdf")
    assert pdf_site.status_code == 200 and pdf_site.headers["content-type"] == "application/pdf"
    assert pdf_site.content == pdf_admin.content and "1,200.00" in text_of(pdf_site.content)
    assert _site(hq_server, tokens["site-b"], "GET", f"/statements/{statement['id']}/pdf").status_code == 404
    confirmed = _site(hq_server, tokens["site-a"], "POST", f"/statements/{statement['id']}/confirm", json={})
    assert confirmed.json()["response"] == "confirmed"
    again = _site(hq_server, tokens["site-a"], "POST", f"/statements/{statement['id']}/dispute", json={"comment": "x"})
    assert again.status_code == 409 and again.json()["error"] == "already_answered"

    asked = _site(hq_server, tokens["site-a"], "POST", "/payouts", json={"request_id": "w-1", "amount_fen": 100_000})
    assert asked.status_code == 200, asked.text
    balance = _site(hq_server, tokens["site-a"], "GET", "/balance").json()
    assert balance["available_fen"] == net - 100_000 - balance["payout_fee_fen"]
    waiting = _admin(hq_server, "GET", "/payouts", params={"status": "requested"}).json()
    assert [p["request_id"] for p in waiting] == ["w-1"]
    approved = _admin(hq_server, "POST", f"/payouts/{asked.json()['id']}/approve", json={"transfer_ref": "BANK-77"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    seen = _site(hq_server, tokens["site-a"], "GET", "/payouts").json()
    assert seen[0]["transfer_ref"] == "BANK-77"
    after = _site(hq_server, tokens["site-a"], "GET", "/balance").json()
    assert after["balance_fen"] == after["available_fen"] == balance["available_fen"]


def test_dispute_then_resolution_by_adjustment(hq_server):
    tokens = _settle_setup(hq_server)
    statement = _admin(hq_server, "POST", "/statements",
                       json={"site": "site-a", "cadence": "weekly", "day": "2026-10-14"}).json()
    disputed = _site(hq_server, tokens["site-a"], "POST", f"/statements/{statement['id']}/dispute",
                     json={"comment": "订单 o7 缺失"})
    assert disputed.json()["comment"] == "订单 o7 缺失"
    resolved = _admin(hq_server, "POST", f"/statements/{statement['id']}/resolve",
                      json={"note": "o7 credited", "adjustment_fen": 2500})
    assert resolved.json()["response"] == "resolved"
    assert _site(hq_server, tokens["site-a"], "GET", "/balance").json()["balance_fen"] == \
        statement["totals"]["closing"] + 2500


def test_refusals_are_one_line_errors_and_change_nothing(hq_server):
    tokens = _settle_setup(hq_server)
    cases = [
        (_site(hq_server, tokens["site-b"], "POST", "/payouts", json={"request_id": "w", "amount_fen": 20_000}),
         409, "insufficient_balance"),
        (_site(hq_server, tokens["site-a"], "POST", "/payouts", json={"request_id": "w", "amount_fen": 1}),
         409, "below_minimum"),
        (_site(hq_server, tokens["site-a"], "POST", "/payouts", json={"request_id": "w w", "amount_fen": 20_000}),
         422, "invalid_request"),
        (_site(hq_server, tokens["site-a"], "POST", "/statements/1/dispute", json={"comment": "   "}),
         422, "invalid_request"),
        (_admin(hq_server, "POST", "/statements", json={"site": "site-a", "cadence": "monthly", "day": "2199-12-01"}),
         409, "period_open"),
        (_admin(hq_server, "POST", "/statements", json={"site": "nobody", "cadence": "monthly", "day": "2026-10-01"}),
         404, "not_found"),
        (http.get(f"{hq_server.url}/v1/settlement/balance"), 401, "unauthorized"),
        (_site(hq_server, hq_server.operator_token, "GET", "/balance"), 401, "invalid_licence"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]) == (status, code), response.text
        assert "\n" not in response.json()["detail"]
    assert _admin(hq_server, "GET", "/payouts").json() == []
    assert _admin(hq_server, "GET", "/statements").json() == []


def test_a_revoked_site_cannot_ask_for_payouts(hq_server):
    tokens = _settle_setup(hq_server)
    hq_server.revoke("site-a")
    refused = _site(hq_server, tokens["site-a"], "POST", "/payouts", json={"request_id": "w", "amount_fen": 20_000})
    assert refused.status_code == 403


def test_orders_through_the_api_land_in_the_ledger(hq_server):
    tokens = _settle_setup(hq_server)
    result = post_orders(hq_server, tokens["site-b"], "k1", [order("b1", unit_price_cents=5000)])
    assert result.json()["results"][0]["status"] == "delivered"
    balance = _site(hq_server, tokens["site-b"], "GET", "/balance").json()
    assert balance["balance_fen"] == 5000 - 4000 - 600
