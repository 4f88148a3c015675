"""The daily reconciliation of the gateway's books against HQ's payments, on a served HQ and the epay sandbox.

The sandbox lists its trades (`act=orders`, as epay does); HQ compares them
with its payments for a UTC day and flags every difference: paid at the gateway
but not at HQ, a different amount, paid at HQ but unknown (or unpaid) at the
gateway. A trade paid just before midnight at the gateway and after it at HQ is
no difference. Outcomes are stored per (gateway, day) and exported on /metrics.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from hq.clock import utcnow
from hq.metrics import FleetCollector
from hq.models import PaymentReconciliation
from hq.payments import config, flow, reconcile
from hq.payments.contract import Notice
from hq.payments.epay import EpayGateway
from hq.payments.sandbox_epay import EpaySandbox, Trade, serving
from hq.testing import running_hq
from kitctl.cli import run
from kitcore.errors import InvalidInput
from tests.agent.helpers import OPEN_RULES
from tests.hq.helpers import http, order, post_orders
from tests.hq.test_hq_payments import _wait_status, paying, sandbox  # noqa: F401  (fixtures)


def _ordered(hq, token: str, order_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    resp = post_orders(hq, token, f"k-{order_id}", [order(order_id, sku="card-p", unit_price_cents=9500)])
    assert resp.status_code == 200, resp.text
    return resp.json()["results"][0]


def _opened(box: EpaySandbox, result: dict[str, Any]) -> Trade:
    assert http.get(result["payment"]["pay_url"]).status_code == 200  # the buyer opens the pay link
    out_trade_no = parse_qs(urlsplit(result["payment"]["pay_url"]).query)["out_trade_no"][0]
    return box.by_out_trade_no(next(iter(box.merchants)), out_trade_no)


def _trade_of(result: dict[str, Any]) -> str:
    return parse_qs(urlsplit(result["payment"]["pay_url"]).query)["out_trade_no"][0]


def test_every_difference_between_the_gateways_books_and_hqs_is_flagged(paying):
    hq, token, box = paying
    hq.set_rules(OPEN_RULES)  # six orders by one buyer: no velocity review
    hq.seed_card_keys("card-p", 6)
    fine = _ordered(hq, token, "C1")
    box.pay(_opened(box, fine).trade_no)
    _wait_status(hq, token, "C1", "delivered")

    lost = _ordered(hq, token, "C2")  # paid at the gateway, the notification lost, the sweep not run yet
    box.drop_notifications = True
    box.pay(_opened(box, lost).trade_no)
    box.drop_notifications = False

    changed = _ordered(hq, token, "C3")  # delivered, then the gateway's books say another amount
    trade = _opened(box, changed)
    box.pay(trade.trade_no)
    _wait_status(hq, token, "C3", "delivered")
    trade.money = "9.50"

    unknown = _ordered(hq, token, "C4")  # HQ applied a payment the gateway never saw (a bug HQ must find)
    assert flow.apply(hq.service, "epay", Notice(_trade_of(unknown), "X1", 9500, "CNY", True)) == "applied"
    unpaid = _ordered(hq, token, "C5")  # HQ applied one the gateway says is unpaid
    _opened(box, unpaid)
    assert flow.apply(hq.service, "epay", Notice(_trade_of(unpaid), "X2", 9500, "CNY", True)) == "applied"

    midnight = _ordered(hq, token, "C6")  # paid at the gateway yesterday 23:59:59, at HQ today: no difference
    trade = _opened(box, midnight)
    box.pay(trade.trade_no)
    _wait_status(hq, token, "C6", "delivered")
    today = utcnow().date()
    trade.addtime = trade.endtime = datetime.combine(today, datetime.min.time(), timezone.utc) - timedelta(seconds=1)

    later = utcnow() + timedelta(days=1, hours=2)
    [result] = reconcile.run(hq.service, today, "op", now=later)
    assert result["status"] == "differences"
    assert {(d["kind"], d["hq_order_id"]) for d in result["differences"]} == {
        ("paid_at_gateway_only", lost["hq_order_id"]), ("amount_mismatch", changed["hq_order_id"]),
        ("paid_at_hq_only", unknown["hq_order_id"]), ("paid_at_hq_only", unpaid["hq_order_id"])}
    mismatch = next(d for d in result["differences"] if d["kind"] == "amount_mismatch")
    assert (mismatch["gateway_cents"], mismatch["hq_cents"]) == (950, 9500)
    assert {d["detail"] for d in result["differences"] if d["kind"] == "paid_at_hq_only"} == {
        "the gateway has no such trade", "the gateway says unpaid"}
    assert result["by_kind"] == {"paid_at_gateway_only": 1, "amount_mismatch": 1, "paid_at_hq_only": 2,
                                 "refund_at_gateway_only": 0, "refund_at_hq_only": 0}
    assert (result["gateway_paid"], result["hq_paid"]) == (3, 5)  # C1 C2 C3 there; C1 C3 C4 C5 C6 here

    families = {f.name: f for f in FleetCollector(hq.service, ttl=0).collect()}
    exported = {tuple(s.labels.values()): s.value for s in families["kithq_payment_reconciliation_differences"].samples}
    assert exported[("epay", "paid_at_hq_only")] == 2 and exported[("epay", "amount_mismatch")] == 1
    assert families["kithq_payment_reconciliation_failed"].samples[0].value == 0

    flow.sweep(hq.service, utcnow() + timedelta(hours=1))  # the sweep finds the lost one; a rerun replaces the day
    trade.money = "95.00"
    [again] = reconcile.run(hq.service, today, "op", now=later)
    assert {d["kind"] for d in again["differences"]} == {"amount_mismatch", "paid_at_hq_only"}
    with hq.service.read() as conn:
        assert conn.execute(select(func.count()).select_from(PaymentReconciliation)).scalar() == 1


def test_refunds_are_reconciled_against_the_gateways_books(paying, monkeypatch):
    from hq.payments import refunds

    hq, token, box = paying
    hq.set_rules(OPEN_RULES)
    hq.seed_card_keys("card-p", 4)
    trades = {}
    for order_id in ("R1", "R2", "R3", "R4"):
        trades[order_id] = _opened(box, _ordered(hq, token, order_id))
        box.pay(trades[order_id].trade_no)
        _wait_status(hq, token, order_id, "delivered")
    hq_ids = {o: _status_id(hq, token, o) for o in trades}
    refunds.refund(hq.service, "op", hq_ids["R1"], "buyer asked")  # refunded on both sides: no difference
    refunds.refund(hq.service, "op", hq_ids["R2"], "buyer asked")
    trades["R2"].refunded = "0.00"  # HQ recorded a refund the gateway's books do not show
    box.refund(trades["R3"], "95.00")  # money given back at the gateway, HQ holds the order delivered
    later = utcnow() + timedelta(days=1, hours=2)
    [result] = reconcile.run(hq.service, utcnow().date(), "op", now=later)
    assert {(d["kind"], d["order_id"], d["detail"]) for d in result["differences"]} == {
        ("refund_at_hq_only", "R2", "the gateway gave back 0 fen of 9500"),
        ("refund_at_gateway_only", "R3", "HQ's payment is paid")}
    assert result["by_kind"]["refund_at_hq_only"] == 1 and result["by_kind"]["refund_at_gateway_only"] == 1
    families = {f.name: f for f in FleetCollector(hq.service, ttl=0).collect()}
    exported = {tuple(s.labels.values()): s.value for s in families["kithq_payment_reconciliation_differences"].samples}
    assert exported[("epay", "refund_at_hq_only")] == 1 and exported[("epay", "refund_at_gateway_only")] == 1

    # a provider whose books say nothing of refunds (older epay): HQ's refunds stay unchecked, nothing flagged
    plain = EpaySandbox.record
    monkeypatch.setattr(EpaySandbox, "record", staticmethod(lambda t: {
        k: v for k, v in plain(t).items() if k != "refundmoney"}))
    [quiet] = reconcile.run(hq.service, utcnow().date(), "op", now=later)
    assert quiet["status"] == "matched" and quiet["differences"] == []


def _status_id(hq, token: str, order_id: str) -> str:  # type: ignore[no-untyped-def]
    from tests.hq.test_hq_payments import _status

    return _status(hq, token, order_id)["hq_order_id"]


def test_a_day_not_over_or_an_unconfigured_gateway_is_refused_and_nothing_is_stored(paying):
    hq, _, _ = paying
    with pytest.raises(InvalidInput, match="has not ended"):
        reconcile.run(hq.service, utcnow().date(), "op")
    with pytest.raises(InvalidInput, match="not configured"):
        reconcile.run(hq.service, utcnow().date() - timedelta(days=2), "op", "nope")
    with hq.service.read() as conn:
        assert conn.execute(select(func.count()).select_from(PaymentReconciliation)).scalar() == 0


def test_a_gateway_that_cannot_be_read_is_a_failed_run_retried_by_the_schedule(paying):
    hq, _, box = paying
    pid = next(iter(box.merchants))
    config.configure(hq.service, "op", "epay", {"api_url": box.url, "pid": pid, "key": "wrong-key"})
    now = utcnow().replace(hour=10, minute=0, second=0, microsecond=0)  # now + 2 h stays in the same day
    assert reconcile.due(hq.service, now) == 1
    assert reconcile.due(hq.service, now + timedelta(minutes=5)) == 0  # not again at once
    with hq.service.read() as conn:
        row = conn.execute(select(PaymentReconciliation)).first()
    assert row.status == "failed" and "KEY" in row.error and row.day == (now - reconcile.GRACE).date() - timedelta(days=1)
    config.configure(hq.service, "op", "epay", {"api_url": box.url, "pid": pid, "key": box.merchants[pid]})
    assert reconcile.due(hq.service, now + timedelta(hours=1, minutes=1)) == 1  # retried an hour later
    assert reconcile.due(hq.service, now + timedelta(hours=2)) == 0  # matched: done for the day
    with hq.service.read() as conn:
        assert conn.execute(select(PaymentReconciliation.status)).scalar() == "matched"


def test_the_epay_listing_pages_back_until_the_trades_are_older_than_the_day(sandbox):
    pid, key = sandbox.add_merchant()
    start = datetime(2026, 11, 3, tzinfo=timezone.utc)
    for i in range(120):  # three days of trades, newest last; every third one paid
        at = start - timedelta(days=1) + timedelta(minutes=36 * i)
        sandbox.trades[f"T{i}"] = Trade(f"T{i}", pid, f"k{i}", "alipay", "x", "1.00", "http://n/", "http://r/",
                                       status=int(i % 3 == 0), addtime=at, endtime=at if i % 3 == 0 else None)
    gateway = EpayGateway({"api_url": sandbox.url, "pid": pid, "key": key})
    got = gateway.records(start, start + timedelta(days=1))
    inside = {f"k{i}" for i in range(120) if start <= start - timedelta(days=1) + timedelta(minutes=36 * i)
              < start + timedelta(days=1)}
    assert {r.out_trade_no for r in got} == inside and len(inside) == 40
    assert all(r.created_at.tzinfo is not None for r in got)  # the gateway's +08:00 read back as UTC


def kit(hq_dir, *args: str) -> int:  # type: ignore[no-untyped-def]
    return run(["hq", "payments", *args, "--hq-dir", str(hq_dir)])


def test_the_cli_reconciles_a_day_and_refuses_bad_input_in_one_line(tmp_path, capsys, sandbox):
    hq_dir, creds = tmp_path / "hq", tmp_path / "epay.json"
    pid, key = sandbox.add_merchant()
    for bad, message in ((["--day", "2026-13-01"], "--day must be a date"), (["--day", "2026-11-01"],
                                                                              "no payment gateway is configured")):
        assert kit(hq_dir, "reconcile", *bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    creds.write_text(json.dumps({"api_url": sandbox.url, "pid": pid, "key": key}))
    assert kit(hq_dir, "enable", "epay", "--credentials", str(creds)) == 0
    assert kit(hq_dir, "reconcile", "--day", utcnow().date().isoformat()) == 2
    assert "has not ended" in capsys.readouterr().err
    assert kit(hq_dir, "reconcile", "--day", "2026-11-01", "--json") == 0
    out = capsys.readouterr().out
    [result] = json.loads(out[out.index("["):])
    assert (result["status"], result["day"], result["differences"]) == ("matched", "2026-11-01", [])
    assert key not in out
    creds.write_text(json.dumps({"api_url": sandbox.url, "pid": pid, "key": "wrong"}))
    assert kit(hq_dir, "enable", "epay", "--credentials", str(creds)) == 0
    assert kit(hq_dir, "reconcile", "--day", "2026-11-01") == 1  # the books could not be read: not matched
    assert "failed" in capsys.readouterr().out


def test_hq_reconciles_yesterday_on_its_own(tmp_path, sandbox):
    pid, key = sandbox.add_merchant()
    with running_hq(tmp_path, payment_check_seconds=3600, payment_reconcile_seconds=0.2) as hq:
        config.configure(hq.service, "tester", "epay", {"api_url": sandbox.url, "pid": pid, "key": key})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with hq.service.read() as conn:
                row = conn.execute(select(PaymentReconciliation)).first()
            if row is not None:
                break
            time.sleep(0.1)
        assert row is not None and row.status == "matched" and row.ran_by == "hq:auto"
