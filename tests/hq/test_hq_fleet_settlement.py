"""The fleet page's settlement section over HTTP: issue, the site's answer shown, a dispute resolved by
adjustment, a payout approved, downloads; refusals are one line on the page and change nothing."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import httpx

from hq.ledger import events
from tests.hq.helpers import auth, http
from tests.hq.test_hq_statement_pdf import text_of

PAST = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


def _login(hq) -> tuple[httpx.Client, str]:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=hq.url, timeout=30, follow_redirects=False)
    assert client.post("/fleet/login", data={"token": hq.operator_token}).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/fleet").text).group(1)  # type: ignore[union-attr]
    return client, csrf


def _post(client: httpx.Client, path: str, **form: str) -> str:
    """The form posted; the page it redirects to (with its message)."""
    done = client.post(path, data=form)
    assert done.status_code == 303 and done.headers["location"].startswith("/fleet?"), done.text
    return client.get(done.headers["location"]).text


def _row(page: str, statement_id: int) -> str:
    return re.search(rf'<tr data-statement="{statement_id}".*?</tr>', page, re.S).group(0)  # type: ignore[union-attr]


def _balance(hq, token: str) -> int:  # type: ignore[no-untyped-def]
    return http.get(f"{hq.url}/v1/settlement/balance", headers=auth(token)).json()["balance_fen"]


def test_issue_answer_resolve_and_approve_from_the_fleet_page(hq_server):
    hq = hq_server
    token = hq.issue_licence("xingchen")
    with hq.service.connection() as conn:
        events.order_paid(conn, [events.PaidOrder("xingchen", "hq_1", "o1", 1, 200_000, 4000, "game")], at=PAST)
    client, csrf = _login(hq)
    assert 'id="settlement"' in client.get("/fleet").text and "No statement issued yet." in client.get("/fleet").text

    page = _post(client, "/fleet/settlement/issue", csrf=csrf, site="xingchen", cadence="monthly", day="2026-10-14")
    statement = http.get(f"{hq.url}/v1/settlement/statements", headers=auth(token)).json()[0]
    closing = statement["totals"]["closing"]
    assert f"statement {statement['id']} for xingchen, 2026-10-01..2026-11-01" in page
    assert "awaiting answer" in _row(page, statement["id"]) and f"¥{closing / 100:,.2f}" in _row(page, statement["id"])

    disputed = http.post(f"{hq.url}/v1/settlement/statements/{statement['id']}/dispute", headers=auth(token),
                         json={"comment": "少了一笔退款"})
    assert disputed.status_code == 200
    row = _row(client.get("/fleet").text, statement["id"])
    assert 'data-state="disputed"' in row and "少了一笔退款" in row and "/resolve" in row

    refused = _post(client, f"/fleet/settlement/statements/{statement['id']}/resolve", csrf=csrf, note="x",
                    adjustment="12.345")
    assert "amount in yuan" in refused and _balance(hq, token) == closing  # nothing posted
    page = _post(client, f"/fleet/settlement/statements/{statement['id']}/resolve", csrf=csrf,
                 note="退款已补记", adjustment="-12.34")
    assert "resolved, adjustment -12.34 yuan" in page and 'data-state="resolved"' in _row(page, statement["id"])
    assert _balance(hq, token) == closing - 1234

    asked = http.post(f"{hq.url}/v1/settlement/payouts", headers=auth(token),
                      json={"request_id": "w-1", "amount_fen": 100_000}).json()
    assert f'data-payout="{asked["id"]}"' in client.get("/fleet").text
    page = _post(client, f"/fleet/settlement/payouts/{asked['id']}/approve", csrf=csrf, transfer_ref="BANK-42")
    assert f"payout {asked['id']} (xingchen) approved: BANK-42" in page and f'data-payout="{asked["id"]}"' not in page
    assert _balance(hq, token) == closing - 1234 - 100_000 - asked["fee_fen"]

    csv_file = client.get(f"/fleet/settlement/statements/{statement['id']}/csv")
    pdf_file = client.get(f"/fleet/settlement/statements/{statement['id']}/pdf")
    assert csv_file.status_code == 200 and b"hq_1" in csv_file.content
    assert pdf_file.headers["content-type"] == "application/pdf" and f"{closing / 100:,.2f}" in text_of(pdf_file.content)
    client.close()


def test_refusals_are_one_line_and_change_nothing(hq_server):
    hq = hq_server
    token = hq.issue_licence("xingchen")
    client, csrf = _login(hq)
    for form, message in (({"site": "xingchen", "day": "2026-13-01"}, "day must be a date"),
                          ({"site": "xingchen", "cadence": "daily"}, "cadence must be one of"),
                          ({"site": "nobody", "day": "2026-10-01"}, "has no licence"),
                          ({"site": "xingchen", "day": "2999-01-01"}, "has not ended")):
        assert message in _post(client, "/fleet/settlement/issue", csrf=csrf, **form)
    assert http.get(f"{hq.url}/v1/settlement/statements", headers=auth(token)).json() == []
    forged = client.post("/fleet/settlement/issue", data={"csrf": "forged", "site": "xingchen", "day": "2026-10-01"})
    assert forged.status_code == 403
    assert "does not exist" in _post(client, "/fleet/settlement/payouts/77/approve", csrf=csrf, transfer_ref="B-1")
    stranger = httpx.Client(base_url=hq.url, timeout=30, follow_redirects=False)
    assert stranger.get("/fleet/settlement/statements/1/pdf").headers["location"] == "/fleet/login"
    assert stranger.post("/fleet/settlement/issue", data={"csrf": csrf, "site": "xingchen"}).status_code == 401
    client.close()
    stranger.close()
