"""Properties of settlement, for any sequence of orders, refunds, fees, adjustments and payouts (hypothesis):
the ledger balances, each statement's closing is the next one's opening, and a statement issued or exported
again is byte-identical. On SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq import licences
from hq.clock import utcnow
from hq.errors import ApiError
from hq.ledger import accounts, events, payouts, statements
from hq.service import HQ
from tests.hq.ledger_support import open_settlement_hq

SITES = itertools.count()
orders_ = st.tuples(st.just("order"), st.integers(0, 200_000), st.integers(1, 3), st.sampled_from(["game", "phone"]))
refunds = st.tuples(st.just("refund"), st.integers(0, 40))
fees = st.tuples(st.just("base_fee"), st.integers(2026, 2028))
adjustments = st.tuples(st.just("adjust"), st.integers(-50_000, 50_000).filter(bool))
withdrawals = st.tuples(st.just("payout"), st.integers(1, 400_000), st.booleans())
steps = st.lists(st.tuples(st.one_of(orders_, refunds, fees, adjustments, withdrawals), st.integers(0, 240)),
                 max_size=30)


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_settlement_hq(tmp_path / "hq", db_url)
    yield service
    service.close()


def _start() -> datetime:
    """The first day of the month five months ago: every period the steps touch has ended."""
    first = utcnow().date().replace(day=1)
    for _ in range(5):
        first = (first - timedelta(days=1)).replace(day=1)
    return datetime.combine(first, time.min, tzinfo=timezone.utc)


def _play(hq: HQ, site: str, script: list, start: datetime) -> datetime:
    """Post the steps at increasing times (hours apart, at most 100 days in all); the last time."""
    at, paid = start, []
    for step, gap in script:
        at += timedelta(hours=gap // 3, minutes=gap % 60)
        kind = step[0]
        if kind == "order":
            order = events.PaidOrder(site, f"hq_{site}_{len(paid)}", f"o{len(paid)}", step[2], step[1], 90, step[3])
            with hq.connection() as conn:
                events.order_paid(conn, [order], at=at)
            paid.append(order.hq_order_id)
        elif kind == "refund" and paid:
            try:
                events.refund(hq, "prop", paid[step[1] % len(paid)], "refund", at=at)
            except ApiError as exc:
                assert exc.code == "already_refunded"
        elif kind == "base_fee":
            try:
                events.base_fee(hq, "prop", site, step[1], at=at)
            except ApiError as exc:
                assert exc.code == "already_charged"
        elif kind == "adjust":
            events.adjust(hq, "prop", site, step[1], "property test", at=at)
        elif kind == "payout":
            _payout(hq, site, step[1], step[2], at)
    return at


def _payout(hq: HQ, site: str, amount: int, approve: bool, at: datetime) -> None:
    try:
        asked = payouts.request(hq, site, f"w{at.timestamp():.0f}-{amount}", amount)
    except ApiError as exc:
        assert exc.code in ("below_minimum", "insufficient_balance")
        return
    if approve:
        payouts.approve(hq, "prop", asked["id"], "BANK-1", at=at)
    else:
        payouts.reject(hq, "prop", asked["id"], "not this time")


def _periods(cadence: str, first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        days.append(day)
        day = statements.period(cadence, day)[1]
    return days


def _check_chain(hq: HQ, site: str, cadence: str, first: date, last: date) -> None:
    issued = [statements.issue(hq, "prop", site, cadence, d) for d in _periods(cadence, first, last)]
    assert issued[0]["totals"]["opening"] == 0
    for before, after in zip(issued, issued[1:]):
        assert after["totals"]["opening"] == before["totals"]["closing"]
    with hq.read() as conn:
        assert issued[-1]["totals"]["closing"] == accounts.site_balance(conn, site)
    for statement in issued:
        data = statements.csv_bytes(hq, statement["id"])
        assert statements.issue(hq, "prop", site, cadence, date.fromisoformat(statement["period_start"])) == statement
        assert statements.csv_bytes(hq, statement["id"]) == data
        body = data.decode("utf-8").split("\n\n", 1)[1]
        nets = sum(int(row["net_fen"]) for row in csv.DictReader(io.StringIO(body)))
        totals = statement["totals"]
        assert totals["opening"] + nets == totals["closing"] == sum(v for k, v in totals.items() if k != "closing")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(script=steps, tier=st.sampled_from(["basic", "pro", "flagship"]))
def test_any_sequence_balances_chains_and_reissues_identically(hq, script, tier):
    site = f"prop-{next(SITES)}"
    licences.issue(hq, "t", site, tier, ["game", "phone"], 365)
    start = _start()
    last = _play(hq, site, script, start)
    with hq.read() as conn:
        trial = accounts.trial_balance(conn)
    assert trial.balanced, trial
    _check_chain(hq, site, "monthly", start.date(), last.date())
    _check_chain(hq, site, "weekly", start.date(), last.date())
    frozen = {s["id"]: statements.csv_bytes(hq, s["id"]) for s in statements.list_statements(hq, site)}
    events.adjust(hq, "prop", site, 1, "posted after the statements")  # now: a later, open period
    assert {i: statements.csv_bytes(hq, i) for i in frozen} == frozen
