"""The annual base fee charged by HQ itself (`auto_base_fee`): once per site and year, only while licensed."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from hq import licences
from hq.ledger import accounts, events
from tests.hq.helpers import auth, http
from tests.hq.ledger_support import entry_count, open_settlement_hq

DEC = datetime(2026, 12, 6, 9, tzinfo=timezone.utc)


def test_each_licensed_site_is_charged_the_years_fee_once(tmp_path, db_url):
    hq = open_settlement_hq(tmp_path / "hq", db_url)
    try:
        licences.issue(hq, "t", "site-c", "flagship", ["game"], 365)
        licences.revoke(hq, "t", "site-c", "ended")
        events.base_fee(hq, "op", "site-b", 2026, DEC)  # charged by hand already
        charged = events.charge_due_base_fees(hq, DEC)
        assert [(c["site"], c["source"], c["site_fen"], c["operator"]) for c in charged] == [
            ("site-a", "site-a:2026", -500_000, "hq:auto")]
        assert events.charge_due_base_fees(hq, DEC) == []  # the next round: nothing more
        assert entry_count(hq, "base_fee") == 2
        next_year = events.charge_due_base_fees(hq, DEC.replace(year=2027, month=1, day=2))
        assert sorted(c["source"] for c in next_year) == ["site-a:2027", "site-b:2027"]
        with hq.read() as conn:
            assert accounts.site_balance(conn, "site-c") == 0  # revoked: never charged
        assert accounts_check(hq)
    finally:
        hq.close()


def accounts_check(hq) -> bool:  # type: ignore[no-untyped-def]
    with hq.read() as conn:
        return accounts.trial_balance(conn).balanced


def test_hqs_housekeeping_charges_it_when_switched_on(tmp_path):
    from hq.testing import running_hq

    with running_hq(tmp_path, auto_base_fee=True, housekeeping_seconds=1) as server:
        token = server.issue_licence("site-a")
        deadline = time.monotonic() + 15
        while True:
            balance = http.get(f"{server.url}/v1/settlement/balance", headers=auth(token)).json()
            if balance["balance_fen"] == -500_000 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert balance["balance_fen"] == -500_000
        time.sleep(1.5)  # another round: still once
        assert http.get(f"{server.url}/v1/settlement/balance", headers=auth(token)).json()["balance_fen"] == -500_000
