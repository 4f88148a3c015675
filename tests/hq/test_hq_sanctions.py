"""Timed sanctions: suspend for N days with a reason; HQ lifts it when the time runs out, not a second before.

The boundary tests give every call its own fixed timestamp (never the clock), so the
end instant is tested exactly: one second before it the site stays suspended, at it
the suspension is lifted.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Iterator

import httpx
import pytest
from sqlalchemy import select

from hq import licences, sanctions
from hq.clock import aware
from hq.models import AuditEvent, Command, Site
from hq.service import HQ
from hq.testing import RunningHQ
from kitctl.cli import run
from kitcore.licence.commands import verify_command
from tests.hq.helpers import open_hq

SUSPENDED_AT = datetime(2031, 3, 1, 9, 30, 15, tzinfo=timezone.utc)
ENDS = datetime(2031, 3, 8, 9, 30, 15, tzinfo=timezone.utc)  # 7 days on, written out rather than computed


@pytest.fixture
def hq(tmp_path) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq")
    yield service
    service.close()


def site(hq: HQ) -> Site:
    with hq.session() as s:
        found = s.get(Site, "site-a")
        assert found is not None
        return found


def commands(hq: HQ) -> list[Command]:
    with hq.session() as s:
        return list(s.scalars(select(Command).where(Command.site_id == "site-a").order_by(Command.seq)))


def test_a_timed_suspension_ends_exactly_at_its_end_instant(hq: HQ) -> None:
    out = sanctions.suspend_for(hq, "op", "site-a", "chargebacks", days=7, now=SUSPENDED_AT)
    assert (out["status"], out["reason"], out["suspended_until"]) == ("suspended", "chargebacks", "2031-03-08T09:30:15Z")
    assert aware(site(hq).suspended_until) == ENDS  # type: ignore[arg-type]
    # the site is told the end with the reason, in the signed command
    [suspend] = commands(hq)
    assert suspend.payload == {"reason": "chargebacks", "until": int(ENDS.timestamp())}

    assert sanctions.lift_due(hq, now=ENDS - timedelta(seconds=1)) == []
    assert site(hq).status == "suspended" and len(commands(hq)) == 1
    assert sanctions.lift_due(hq, now=ENDS) == ["site-a"]
    lifted = site(hq)
    assert (lifted.status, lifted.status_reason, lifted.suspended_until) == ("active", None, None)
    assert [(c.seq, c.type) for c in commands(hq)] == [(1, "suspend"), (2, "resume")]
    assert sanctions.lift_due(hq, now=ENDS + timedelta(days=1)) == []  # lifted once
    with hq.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "licence.resume")).one()
        assert (event.operator, event.detail) == ("hq", {"why": "suspension ended"})


def test_is_over_at_the_end_instant_and_never_for_an_open_ended_suspension() -> None:
    assert not sanctions.is_over(ENDS, ENDS - timedelta(microseconds=1))
    assert sanctions.is_over(ENDS, ENDS)
    assert sanctions.is_over(ENDS.replace(tzinfo=None), ENDS)  # SQLite hands the end back naive (UTC)
    assert not sanctions.is_over(None, ENDS + timedelta(days=10_000))


def test_suspension_end_counts_whole_days_from_the_second_it_began() -> None:
    assert sanctions.suspension_end(7, SUSPENDED_AT.replace(microsecond=999_999)) == ENDS
    assert sanctions.suspension_end(1, datetime(2031, 12, 31, 23, 59, 59, tzinfo=timezone.utc)) == \
        datetime(2032, 1, 1, 23, 59, 59, tzinfo=timezone.utc)


def test_what_an_operator_did_meanwhile_wins_over_the_timer(hq: HQ) -> None:
    sanctions.suspend_for(hq, "op", "site-a", "first", days=1, now=SUSPENDED_AT)
    licences.resume(hq, "op", "site-a")
    assert site(hq).suspended_until is None
    licences.suspend(hq, "op", "site-a", "open-ended now")  # re-suspended without an end
    assert sanctions.lift_due(hq, now=SUSPENDED_AT + timedelta(days=30)) == []
    assert site(hq).status == "suspended"
    licences.resume(hq, "op", "site-a")
    sanctions.suspend_for(hq, "op", "site-a", "timed again", days=2, now=SUSPENDED_AT)
    licences.revoke(hq, "op", "site-a", "terms broken")
    assert site(hq).suspended_until is None
    assert sanctions.lift_due(hq, now=SUSPENDED_AT + timedelta(days=30)) == []
    assert site(hq).status == "revoked"


def test_the_admin_api_takes_days_and_refuses_bad_ones(hq_server: RunningHQ) -> None:
    token = hq_server.issue_licence("timed-api")
    url = f"{hq_server.url}/v1/admin/licences/timed-api/suspend"
    for bad in ({"reason": "x", "days": 0}, {"reason": "x", "days": 3651}, {"reason": "x", "days": "7"},
                {"reason": "x", "days": 1.5}, {"days": 3}):
        r = httpx.post(url, headers=hq_server.admin_headers(), json=bad, timeout=10)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", (bad, r.text)
    r = httpx.post(url, headers=hq_server.admin_headers(), json={"reason": "unpaid invoice", "days": 3}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    until = datetime.fromisoformat(body["suspended_until"].replace("Z", "+00:00"))
    assert body["status"] == "suspended" and timedelta(days=3) - timedelta(minutes=1) < \
        until - datetime.now(timezone.utc) <= timedelta(days=3)
    beat = httpx.post(f"{hq_server.url}/v1/heartbeat", timeout=10, json={"version": "1", "applied_seq": 0},
                      headers={"Authorization": f"Bearer {token}"})
    [command] = beat.json()["commands"]
    assert verify_command(command, hq_server.service.pinned()).payload["until"] == int(until.timestamp())
    listed = httpx.get(f"{hq_server.url}/v1/admin/licences", headers=hq_server.admin_headers(), timeout=10).json()
    assert [l["suspended_until"] for l in listed if l["site"] == "timed-api"] == [body["suspended_until"]]


def test_the_cli_suspends_for_days_and_refuses_a_bad_count(tmp_path, capsys) -> None:
    hq_dir = tmp_path / "hq"
    assert run(["hq", "licence", "issue", "--site", "xingchen", "--categories", "game", "--registry-url", "",
                "--hq-dir", str(hq_dir)]) == 0
    for bad in ("0", "3651", "-2"):
        assert run(["hq", "licence", "suspend", "xingchen", "--reason", "x", "--days", bad,
                    "--hq-dir", str(hq_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "--days" in err and "Traceback" not in err
    assert run(["hq", "licence", "list", "--json", "--hq-dir", str(hq_dir)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "active"  # the refusals changed nothing
    assert run(["hq", "licence", "suspend", "xingchen", "--reason", "late payment", "--days", "14",
                "--hq-dir", str(hq_dir)]) == 0
    assert "(until" in capsys.readouterr().out  # the table shows the end with the reason
    assert run(["hq", "licence", "list", "--json", "--hq-dir", str(hq_dir)]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["status"] == "suspended" and listed["suspended_until"] is not None
