"""The site's ledger entries as a feed: the statement's lines, in the order posted, with a cursor that waits.

Runs on SQLite and on PostgreSQL (the `db_url` fixture).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

from hq.ledger import events
from tests.hq.helpers import auth, http

PAST = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


def _feed(hq_server, token, **params):
    return http.get(f"{hq_server.url}/v1/settlement/entries", headers=auth(token), params=params)


def _paid(hq_server, site, ids, at=None):
    with hq_server.service.connection() as conn:
        events.order_paid(conn, [events.PaidOrder(site, f"hq_{i}", f"o{i}", 2, 5_000, 4_000, "game") for i in ids],
                          at=at)


def test_the_feed_carries_each_entry_as_the_statement_line_and_only_the_sites_own(hq_server):
    hq_server.seed_item("game-100", price_cents=4000, stock_kind="direct_topup")
    tokens = {site: hq_server.issue_licence(site) for site in ("site-a", "site-b")}
    _paid(hq_server, "site-a", ["a1", "a2"], at=PAST)
    _paid(hq_server, "site-b", ["b1"], at=PAST)
    events.adjust(hq_server.service, "op", "site-a", -150, "=cmd() fee", at=PAST)
    page = _feed(hq_server, tokens["site-a"]).json()
    assert [e["reference"] for e in page["entries"]] == ["oa1", "oa2", "=cmd() fee"]  # raw text, not CSV-escaped
    first = page["entries"][0]
    assert (first["gross_fen"], first["hq_cost_fen"], first["hq_share_fen"], first["net_fen"]) == \
        (10_000, -8_000, -1_200, 800)  # pro: 12 %
    assert page["next_after"] == page["entries"][-1]["id"] and page["has_more"] is False

    admin = hq_server.admin_headers()
    issued = http.post(f"{hq_server.url}/v1/admin/settlement/statements", headers=admin,
                       json={"site": "site-a", "cadence": "monthly", "day": "2026-10-14"}).json()
    text = http.get(f"{hq_server.url}/v1/settlement/statements/{issued['id']}/csv",
                    headers=auth(tokens["site-a"])).content.decode("utf-8-sig")
    lines = list(csv.DictReader(io.StringIO(text.split("\n\n", 1)[1])))
    columns = ("gross_fen", "hq_cost_fen", "hq_share_fen", "fees_fen", "adjustment_fen", "payout_fen", "net_fen")
    assert [[int(line[c]) for c in ("entry_id", *columns)] for line in lines] == \
        [[e["id"], *(e[c] for c in columns)] for e in page["entries"]]
    assert [e["posted_at"] for e in page["entries"]] == [line["posted_at"] for line in lines]

    paged = _feed(hq_server, tokens["site-a"], limit=2).json()
    assert len(paged["entries"]) == 2 and paged["has_more"] is True
    rest = _feed(hq_server, tokens["site-a"], after=paged["next_after"]).json()
    assert [e["id"] for e in paged["entries"] + rest["entries"]] == [e["id"] for e in page["entries"]]


def test_the_cursor_does_not_move_past_entries_posted_in_the_last_minutes(hq_server):
    hq_server.seed_item("game-100", price_cents=4000, stock_kind="direct_topup")
    token = hq_server.issue_licence("site-a")
    _paid(hq_server, "site-a", ["old"], at=PAST)
    _paid(hq_server, "site-a", ["new"])  # now: a transaction with a lower id may still commit
    page = _feed(hq_server, token).json()
    old, new = page["entries"]
    assert page["next_after"] == old["id"] < new["id"]
    again = _feed(hq_server, token, after=page["next_after"]).json()
    assert [e["id"] for e in again["entries"]] == [new["id"]]


def test_bad_cursors_and_strangers_are_refused(hq_server):
    token = hq_server.issue_licence("site-a")
    for params in ({"after": -1}, {"limit": 0}, {"limit": 1001}, {"after": "x"}):
        r = _feed(hq_server, token, **params)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", params
    assert http.get(f"{hq_server.url}/v1/settlement/entries").status_code == 401
