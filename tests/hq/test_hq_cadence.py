"""Each site's settlement cadence: statements cover its own period unless the operator says otherwise."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from hq.errors import ApiError
from hq.ledger import events, statements
from kitcore.errors import InvalidInput
from kitctl.cli import run
from tests.hq.helpers import http
from tests.hq.ledger_support import open_settlement_hq

OCT = datetime(2026, 10, 14, 9, tzinfo=timezone.utc)


@pytest.fixture
def hq(tmp_path, db_url):  # type: ignore[no-untyped-def]
    service = open_settlement_hq(tmp_path / "hq", db_url)
    with service.connection() as conn:
        events.order_paid(conn, [events.PaidOrder("site-a", "hq_1", "o1", 1, 50_000, 4000, "game")], at=OCT)
    yield service
    service.close()


def test_a_site_is_monthly_until_set_weekly_and_issued_statements_keep_their_period(hq):
    monthly = statements.issue(hq, "op", "site-a", None, date(2026, 10, 20))
    assert (monthly["cadence"], monthly["period_start"], monthly["period_end"]) == ("monthly", "2026-10-01", "2026-11-01")
    assert statements.set_cadence(hq, "op", "site-a", "weekly") == {"site": "site-a", "cadence": "weekly"}
    weekly = statements.issue(hq, "op", "site-a", None, date(2026, 10, 14))
    assert (weekly["cadence"], weekly["period_start"], weekly["period_end"]) == ("weekly", "2026-10-12", "2026-10-19")
    assert statements.get(hq, monthly["id"])["cadence"] == "monthly"
    assert statements.issue(hq, "op", "site-a", "monthly", date(2026, 10, 20)) == monthly  # the operator's say wins
    assert statements.site_cadence(hq, "site-b") == "monthly"
    last = statements.issue(hq, "op", "site-a", None)  # no day: the last week that has ended
    assert last["cadence"] == "weekly" and date.fromisoformat(last["period_end"]) <= datetime.now(timezone.utc).date()


def test_bad_cadences_and_unknown_sites_are_refused_and_change_nothing(hq):
    with pytest.raises(InvalidInput, match="cadence must be one of: weekly, monthly"):
        statements.set_cadence(hq, "op", "site-a", "daily")
    with pytest.raises(ApiError) as missing:
        statements.set_cadence(hq, "op", "nobody", "weekly")
    assert missing.value.status == 404
    with pytest.raises(ApiError):
        statements.issue(hq, "op", "nobody", None, date(2026, 10, 1))
    assert statements.site_cadence(hq, "site-a") == "monthly"


def test_cadence_over_the_api_and_the_cli(tmp_path, capsys):
    from hq.testing import running_hq

    with running_hq(tmp_path) as server:
        server.issue_licence("site-a")
        url = f"{server.url}/v1/admin/settlement/sites/site-a/cadence"
        ok = http.put(url, headers=server.admin_headers(), json={"cadence": "weekly"})
        assert ok.status_code == 200 and ok.json() == {"site": "site-a", "cadence": "weekly"}
        bad = http.put(url, headers=server.admin_headers(), json={"cadence": "daily"})
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
        assert http.put(f"{server.url}/v1/admin/settlement/sites/nobody/cadence", headers=server.admin_headers(),
                        json={"cadence": "weekly"}).status_code == 404
        assert http.put(url, json={"cadence": "weekly"}).status_code == 401
        issued = http.post(f"{server.url}/v1/admin/settlement/statements", headers=server.admin_headers(),
                           json={"site": "site-a", "day": "2026-10-14"})
        assert issued.status_code == 200 and issued.json()["period_start"] == "2026-10-12"
        hq_dir = str(server.hq_dir)
    assert run(["hq", "settle", "cadence", "site-a", "monthly", "--hq-dir", hq_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"site": "site-a", "cadence": "monthly"}
    assert run(["hq", "settle", "cadence", "site-a", "daily", "--hq-dir", hq_dir]) == 2
    assert "cadence must be one of" in capsys.readouterr().err
    assert run(["hq", "settle", "issue", "site-a", "--cadence", "daily", "--hq-dir", hq_dir]) == 2
    assert run(["hq", "settle", "issue", "site-a", "--day", "2026-10-14", "--hq-dir", hq_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["period_start"] == "2026-10-01"
