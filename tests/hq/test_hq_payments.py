"""Unified payment at HQ on a served HQ and the epay sandbox, on SQLite and PostgreSQL.

An approved order becomes payable; only a verified notification with the
order's amount delivers it (keys sold, ledger posted); replays change nothing,
forged ones are refused and counted, unpaid ones expire and their key is sold
to the next buyer, a lost notification is found by HQ's query, one that comes
before its order waits for it.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from hq.clock import utcnow
from hq.metrics import metrics
from hq.models import CardKey, LedgerEntry, Order, Payment
from hq.payments import config, flow
from hq.payments.contract import PaymentRequest
from hq.payments.epay import EpayGateway
from hq.payments.sandbox_epay import EpaySandbox, serving
from hq.testing import RunningHQ, running_hq
from tests.agent.helpers import OPEN_RULES
from tests.hq.helpers import auth, http, order, post_orders
from tests.support.waiting import eventually

SITE = "site-pay"


@pytest.fixture
def sandbox() -> Iterator[EpaySandbox]:
    with serving(EpaySandbox(notify_delay=0.1)) as box:
        yield box


@pytest.fixture
def paying(tmp_path, db_url, sandbox) -> Iterator[tuple[RunningHQ, str, EpaySandbox]]:
    """A served HQ with epay enabled (sandbox credentials), `card-p` with two keys, and a site's token."""
    with running_hq(tmp_path, database_url=db_url, payment_check_seconds=3600) as hq:
        hq.seed_item("card-p", price_cents=9000)
        hq.seed_card_keys("card-p", 2)
        pid, key = sandbox.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": sandbox.url, "pid": pid, "key": key})
        yield hq, hq.issue_licence(SITE, categories=["game"]), sandbox


def _order(hq: RunningHQ, token: str, order_id: str) -> dict[str, Any]:
    resp = post_orders(hq, token, f"k-{order_id}", [order(order_id, sku="card-p", unit_price_cents=9500)])
    assert resp.status_code == 200, resp.text
    return resp.json()["results"][0]


def _status(hq: RunningHQ, token: str, order_id: str) -> dict[str, Any]:
    resp = http.get(f"{hq.url}/v1/orders/{order_id}", headers=auth(token))
    assert resp.status_code == 200, resp.text
    return resp.json()


def _open_at_sandbox(box: EpaySandbox, result: dict[str, Any]) -> str:
    """The buyer opens the pay link: the sandbox checks HQ's signature and starts the trade."""
    resp = http.get(result["payment"]["pay_url"])
    assert resp.status_code == 200 and "95.00" in resp.text, resp.text
    out_trade_no = parse_qs(urlsplit(result["payment"]["pay_url"]).query)["out_trade_no"][0]
    return box.by_out_trade_no(next(iter(box.merchants)), out_trade_no).trade_no


def _wait_status(hq: RunningHQ, token: str, order_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = _status(hq, token, order_id)
        if got["status"] == status:
            return got
        time.sleep(0.05)
    raise AssertionError(f"order {order_id} stayed {got['status']}")


def _ledger_entries(hq: RunningHQ, hq_order_id: str) -> int:
    with hq.service.read() as conn:
        return int(conn.execute(select(func.count()).select_from(LedgerEntry)
                                .where(LedgerEntry.kind == "order", LedgerEntry.source == hq_order_id)).scalar())


def _counted(outcome: str) -> float:
    return metrics().payment_notices.labels("epay", outcome)._value.get()


def _keys(hq: RunningHQ, status: str) -> int:
    with hq.service.read() as conn:
        return int(conn.execute(select(func.count()).select_from(CardKey)
                                .where(CardKey.sku == "card-p", CardKey.status == status)).scalar())


def test_an_approved_order_waits_for_payment_and_is_delivered_once_paid(paying):
    hq, token, box = paying
    result = _order(hq, token, "P1")
    assert result["decision"] == "approve" and result["status"] == "pending_payment"
    assert result["delivery"] is None and result["payment"]["amount_cents"] == 9500
    assert result["payment"]["pay_url"].startswith(box.url + "submit.php?")
    assert _keys(hq, "reserved") == 1 and _keys(hq, "available") == 1
    assert _ledger_entries(hq, result["hq_order_id"]) == 0  # nothing paid, nothing posted
    box.pay(_open_at_sandbox(box, result))
    done = _wait_status(hq, token, "P1", "delivered")
    assert len(done["delivery"]["card_keys"]) == 1 and done["payment"] is None
    assert _keys(hq, "sold") == 1 and _keys(hq, "reserved") == 0
    assert _ledger_entries(hq, result["hq_order_id"]) == 1


def test_with_a_gateway_a_batch_of_new_orders_opens_its_payments_on_the_batch_path(paying, monkeypatch):
    """One transaction for the batch, as without a gateway: each payment row belongs to its order, and nothing falls
    back to deciding the orders one at a time (which would hide a batch path that cannot open them)."""
    from hq import orders as hq_orders

    def one_at_a_time(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the batch of new orders fell back to the per-order path")

    monkeypatch.setattr(hq_orders, "decide_one", one_at_a_time)
    hq, token, _ = paying
    resp = post_orders(hq, token, "k-B", [order(i, sku="card-p", unit_price_cents=9500) for i in ("B1", "B2")])
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [(r["order_id"], r["status"], r["payment"]["amount_cents"]) for r in results] == [
        ("B1", "pending_payment", 9500), ("B2", "pending_payment", 9500)]
    with hq.service.read() as conn:
        linked = dict(conn.execute(select(Order.order_id, Payment.out_trade_no).join(Payment, Payment.order_pk == Order.id)).all())
    # the merchant order number: the same for the same (site, order) on every HQ worker, and only for it
    assert linked == {i: "k" + hashlib.sha256(f"{SITE}/{i}".encode()).hexdigest()[:31] for i in ("B1", "B2")}


def test_the_gateway_sends_the_payer_back_to_the_payer_url_and_notifies_the_public_url(tmp_path, db_url, sandbox):
    """KIT_HQ_PAYER_URL: where a browser reaches HQ when the gateway reaches it elsewhere (the demo's containers)."""
    with running_hq(tmp_path, database_url=db_url, payment_check_seconds=3600,
                    payer_url="http://127.0.0.1:18600") as hq:
        hq.seed_item("card-p", price_cents=9000)
        hq.seed_card_keys("card-p", 1)
        pid, key = sandbox.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": sandbox.url, "pid": pid, "key": key})
        result = _order(hq, hq.issue_licence(SITE, categories=["game"]), "PU1")
    query = {k: v[0] for k, v in parse_qs(urlsplit(result["payment"]["pay_url"]).query).items()}
    assert query["return_url"] == "http://127.0.0.1:18600/v1/payments/return"
    assert query["notify_url"] == f"{hq.url}/v1/payments/epay/notify"


def test_a_replayed_notification_changes_nothing(paying):
    hq, token, box = paying
    result = _order(hq, token, "P2")
    trade = box.trades[_open_at_sandbox(box, result)]
    box.drop_notifications = True
    box.pay(trade.trade_no)
    params = box.notification(trade)
    duplicates = _counted("duplicate")

    def send() -> str:
        return http.get(f"{hq.url}/v1/payments/epay/notify", params=params).text

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: send(), range(16)))
    assert answers == ["success"] * 16  # the gateway stops retrying either way
    assert _counted("duplicate") - duplicates == 15
    done = _status(hq, token, "P2")
    assert done["status"] == "delivered" and len(done["delivery"]["card_keys"]) == 1
    assert _keys(hq, "sold") == 1 and _ledger_entries(hq, result["hq_order_id"]) == 1


def test_a_forged_notification_is_refused_and_counted(paying):
    hq, token, box = paying
    result = _order(hq, token, "P3")
    trade = box.trades[_open_at_sandbox(box, result)]
    params = box.notification(trade)
    params["sign"] = ("0" if params["sign"][0] != "0" else "1") + params["sign"][1:]
    forged = _counted("forged")
    resp = http.get(f"{hq.url}/v1/payments/epay/notify", params=params)
    assert resp.status_code == 403 and resp.text == "fail"
    unknown = http.get(f"{hq.url}/v1/payments/nosuchgw/notify", params=box.notification(trade))
    assert unknown.status_code == 404
    assert _counted("forged") - forged == 1 and metrics().payment_notices.labels("other", "forged")._value.get() >= 1
    assert _status(hq, token, "P3")["status"] == "pending_payment" and _keys(hq, "sold") == 0
    scrape = http.get(f"{hq.url}/metrics", headers=hq.metrics_headers()).text
    assert 'kithq_payment_notifications_total{gateway="epay",outcome="forged"}' in scrape


def test_a_wrong_amount_holds_the_order_for_review(paying):
    hq, token, box = paying
    result = _order(hq, token, "P4")
    trade = box.trades[_open_at_sandbox(box, result)]
    resp = http.get(f"{hq.url}/v1/payments/epay/notify", params=box.notification(trade, money="0.95"))
    assert resp.text == "success"
    held = _status(hq, token, "P4")
    assert held["status"] == "review" and "payment_mismatch" in held["reasons"] and held["delivery"] is None
    assert _keys(hq, "sold") == 0 and _ledger_entries(hq, result["hq_order_id"]) == 0
    # the right amount arriving afterwards does not slip past the hold
    http.get(f"{hq.url}/v1/payments/epay/notify", params=box.notification(trade))
    assert _status(hq, token, "P4")["status"] == "review"


def test_an_unpaid_order_expires_and_its_key_is_sold_to_the_next_buyer(paying):
    hq, token, box = paying
    first, second = _order(hq, token, "E1"), _order(hq, token, "E2")
    assert first["status"] == second["status"] == "pending_payment"
    assert _order(hq, token, "E3")["reasons"] == ["out_of_stock"]  # both keys are reserved
    _open_at_sandbox(box, first)  # opened but never paid
    swept = flow.sweep(hq.service, utcnow() + timedelta(seconds=hq.service.settings.payment_expiry_seconds + 1))
    assert swept == {"found_paid": 0, "expired": 2}
    assert _status(hq, token, "E1")["status"] == "expired" and _keys(hq, "available") == 2
    late = _order(hq, token, "E4")
    assert late["status"] == "pending_payment"
    box.pay(_open_at_sandbox(box, late))
    assert len(_wait_status(hq, token, "E4", "delivered")["delivery"]["card_keys"]) == 1


def test_a_lost_notification_is_found_by_querying_the_gateway(paying):
    hq, token, box = paying
    result = _order(hq, token, "L1")
    box.drop_notifications = True
    box.pay(_open_at_sandbox(box, result))
    time.sleep(0.3)
    assert _status(hq, token, "L1")["status"] == "pending_payment"
    swept = flow.sweep(hq.service, utcnow() + timedelta(seconds=hq.service.settings.payment_expiry_seconds + 1))
    assert swept == {"found_paid": 1, "expired": 0}
    assert _status(hq, token, "L1")["status"] == "delivered" and _ledger_entries(hq, result["hq_order_id"]) == 1


def _pay_at_cashier(box: EpaySandbox, trade_no: str, fault: str | None) -> httpx.Response:
    """The payer presses one of the cashier page's buttons (a fault button names its fault)."""
    return http.post(f"{box.url}pay/{trade_no}", data={"fault": fault} if fault else None)


def test_the_cashiers_fault_buttons_lose_the_notification_or_notify_another_amount(paying):
    hq, token, box = paying
    lost, short = _order(hq, token, "F1"), _order(hq, token, "F2")
    cashier = http.get(lost["payment"]["pay_url"]).text
    assert "id=pay-lose-notification" in cashier and "id=pay-wrong-amount" in cashier
    lost_trade, short_trade = _open_at_sandbox(box, lost), _open_at_sandbox(box, short)
    assert _pay_at_cashier(box, short_trade, "wrong_amount").status_code == 303
    held = _wait_status(hq, token, "F2", "review")  # notified ¥95.01 for a ¥95.00 order
    assert "payment_mismatch" in held["reasons"]
    # the sandbox counts the notification once HQ's "success" reached it, which is after HQ stored the hold
    eventually(lambda: box.trades[short_trade].notified == 1, 10, every=0.05, what="the notification acknowledged")
    assert _pay_at_cashier(box, lost_trade, "lose_notification").status_code == 303
    time.sleep(0.5)
    assert box.trades[lost_trade].status == 1 and box.trades[lost_trade].notified == 0
    assert _status(hq, token, "F1")["status"] == "pending_payment"  # paid, but HQ never heard
    swept = flow.sweep(hq.service, utcnow() + timedelta(seconds=hq.service.settings.payment_expiry_seconds + 1))
    assert swept == {"found_paid": 1, "expired": 0}


def test_an_unknown_fault_is_refused_and_the_trade_stays_unpaid(paying):
    hq, token, box = paying
    trade_no = _open_at_sandbox(box, _order(hq, token, "F3"))
    refused = _pay_at_cashier(box, trade_no, "explode")
    assert refused.status_code == 400 and "unknown fault" in refused.text
    assert box.trades[trade_no].status == 0 and _status(hq, token, "F3")["status"] == "pending_payment"


def test_a_notification_before_its_order_waits_and_is_applied_when_the_order_arrives(paying):
    hq, token, box = paying
    pid, key = next(iter(box.merchants.items()))
    trade_no = flow.out_trade_no(SITE, "W1")
    link = EpayGateway({"api_url": box.url, "pid": pid, "key": key}).create(PaymentRequest(
        trade_no, 9500, "CNY", "card-p x1", f"{hq.url}/v1/payments/epay/notify", f"{hq.url}/v1/payments/return"))
    assert http.get(link.pay_url).status_code == 200
    waiting = _counted("waiting")
    box.pay(box.by_out_trade_no(pid, trade_no).trade_no)
    deadline = time.monotonic() + 10
    while _counted("waiting") == waiting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _counted("waiting") == waiting + 1
    result = _order(hq, token, "W1")
    assert result["status"] == "delivered" and len(result["delivery"]["card_keys"]) == 1
    assert _ledger_entries(hq, result["hq_order_id"]) == 1


def test_credentials_are_sealed_at_rest_and_audited_without_them(paying):
    hq, _token, box = paying
    from hq.models import AuditEvent, PaymentGateway

    key = next(iter(box.merchants.values()))
    with hq.service.read() as conn:
        sealed = conn.execute(select(PaymentGateway.config_enc)).scalar()
        audit = [str(d) for d in conn.execute(select(AuditEvent.detail).where(AuditEvent.action == "payments.configure")).scalars()]
    assert key not in sealed and audit and all(key not in d for d in audit)


def test_concurrent_paid_checkouts_each_deliver_once_and_no_key_is_sold_twice(tmp_path, db_url, sandbox):
    n = 40
    with running_hq(tmp_path, database_url=db_url, payment_check_seconds=3600,
                    site_rate_per_second=10_000, site_rate_burst=10_000) as hq:
        hq.seed_item("card-p", price_cents=9000)
        hq.seed_card_keys("card-p", n)
        pid, key = sandbox.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": sandbox.url, "pid": pid, "key": key})
        token = hq.issue_licence(SITE, categories=["game"])
        hq.set_rules(OPEN_RULES)  # one buyer, many orders: no velocity review here
        sandbox.drop_notifications = True  # the test sends each notification itself, three times, all at once

        def batch(b: int) -> list[dict[str, Any]]:
            ids = [f"C{b}-{i}" for i in range(n // 4)]
            resp = post_orders(hq, token, f"k-batch-{b}", [order(i, sku="card-p", unit_price_cents=9500) for i in ids])
            assert resp.status_code == 200, resp.text
            return resp.json()["results"]

        with ThreadPoolExecutor(4) as pool:
            results = [r for rs in pool.map(batch, range(4)) for r in rs]
        assert [r["status"] for r in results] == ["pending_payment"] * n
        trades = [sandbox.trades[_open_at_sandbox(sandbox, r)] for r in results]
        for t in trades:
            sandbox.pay(t.trade_no)
        notifications = [sandbox.notification(t) for t in trades] * 3
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda p: http.get(f"{hq.url}/v1/payments/epay/notify", params=p).text,
                                    notifications))
        assert answers == ["success"] * len(notifications)
        with hq.service.read() as conn:
            sold = conn.execute(select(CardKey.order_pk, func.count()).where(CardKey.status == "sold")
                                .group_by(CardKey.order_pk)).all()
            entries = conn.execute(select(func.count()).select_from(LedgerEntry)
                                   .where(LedgerEntry.kind == "order")).scalar()
        assert len(sold) == n and all(count == 1 for _, count in sold) and entries == n
        delivered = [_status(hq, token, r["order_id"]) for r in results]
        assert all(d["status"] == "delivered" for d in delivered)
        secrets = [d["delivery"]["card_keys"][0]["secret"] for d in delivered]
        assert len(set(secrets)) == n


def _delivered(paying: tuple[RunningHQ, str, EpaySandbox], order_id: str) -> tuple[dict[str, Any], Any]:
    """An order placed, paid at the sandbox and delivered: HQ's first answer and the sandbox's trade."""
    hq, token, box = paying
    result = _order(hq, token, order_id)
    trade = box.trades[_open_at_sandbox(box, result)]
    box.pay(trade.trade_no)
    _wait_status(hq, token, order_id, "delivered")
    return result, trade


def _refund_entries(hq: RunningHQ, hq_order_id: str) -> int:
    with hq.service.read() as conn:
        return int(conn.execute(select(func.count()).select_from(LedgerEntry)
                                .where(LedgerEntry.kind == "refund", LedgerEntry.source == hq_order_id)).scalar())


def test_a_held_payment_the_operator_rejects_is_refunded_through_the_gateway(paying):
    from hq import reviews

    hq, token, box = paying
    result = _order(hq, token, "R1")
    trade = box.trades[_open_at_sandbox(box, result)]
    trade.status = 1  # the buyer paid; the gateway then said a different amount
    http.get(f"{hq.url}/v1/payments/epay/notify", params=box.notification(trade, money="0.95"))
    assert _status(hq, token, "R1")["status"] == "review"
    resolved = reviews.resolve(hq.service, "op", result["hq_order_id"], "reject", "amount did not match")
    assert resolved["status"] == "refunded" and trade.refunded == trade.money  # the money went back at the gateway
    got = _status(hq, token, "R1")
    assert got["status"] == "refunded" and got["delivery"] is None
    assert _keys(hq, "available") == 2 and _ledger_entries(hq, result["hq_order_id"]) == 0
    assert "operator:reject" in resolved["reasons"] and "out_of_stock" not in resolved["reasons"]
    from hq.models import AuditEvent

    with hq.service.read() as conn:  # the audit trail says who refunded it and why
        refunds = conn.execute(select(AuditEvent.operator, AuditEvent.detail)
                               .where(AuditEvent.action == "payments.refund")).all()
    assert [(op, d["hq_order_id"], d["reason"]) for op, d in refunds] == [("op", result["hq_order_id"],
                                                                           "rejected after payment")]


def _held_for_mismatch(paying: tuple[RunningHQ, str, EpaySandbox], order_id: str) -> tuple[dict[str, Any], Any]:
    """An order the buyer paid with the wrong amount: held for review, its key still reserved."""
    hq, token, box = paying
    result = _order(hq, token, order_id)
    trade = box.trades[_open_at_sandbox(box, result)]
    trade.status = 1
    http.get(f"{hq.url}/v1/payments/epay/notify", params=box.notification(trade, money="0.95"))
    assert _status(hq, token, order_id)["status"] == "review" and _keys(hq, "reserved") == 1
    return result, trade


def test_a_held_payment_the_operator_approves_is_delivered_with_its_reserved_key_and_not_refunded(paying):
    from hq import reviews

    hq, token, _box = paying
    result, trade = _held_for_mismatch(paying, "R4")
    resolved = reviews.resolve(hq.service, "op", result["hq_order_id"], "approve", "buyer topped up by hand")
    assert resolved["status"] == "delivered" and resolved["decision"] == "approve"
    assert "operator:approve" in resolved["reasons"]
    assert "refund_due" not in resolved["reasons"] and "refunded" not in resolved["reasons"]
    assert trade.refunded == "0.00"  # nothing went back to the buyer
    got = _status(hq, token, "R4")
    assert got["status"] == "delivered" and len(got["delivery"]["card_keys"]) == 1
    assert _keys(hq, "sold") == 1 and _keys(hq, "reserved") == 0 and _keys(hq, "available") == 1
    assert _ledger_entries(hq, result["hq_order_id"]) == 1


def test_a_payment_held_after_expiry_the_operator_approves_without_stock_is_rejected_and_refunded(paying):
    from hq import reviews

    hq, token, box = paying
    late = _order(hq, token, "X1")
    trade = box.trades[_open_at_sandbox(box, late)]
    flow.sweep(hq.service, utcnow() + timedelta(seconds=hq.service.settings.payment_expiry_seconds + 1))
    assert _status(hq, token, "X1")["status"] == "expired"
    assert [_order(hq, token, o)["status"] for o in ("X2", "X3")] == ["pending_payment"] * 2  # both keys taken
    box.pay(trade.trade_no)  # the buyer pays the expired order: no key left for it
    assert "paid_after_expiry" in _wait_status(hq, token, "X1", "review")["reasons"]
    resolved = reviews.resolve(hq.service, "op", late["hq_order_id"], "approve")
    assert resolved["status"] == "refunded" and resolved["decision"] == "reject"
    assert {"refund_due", "out_of_stock", "operator:approve", "refunded"} <= set(resolved["reasons"])
    assert trade.refunded == trade.money
    assert _status(hq, token, "X1")["delivery"] is None and _ledger_entries(hq, late["hq_order_id"]) == 0
    assert _keys(hq, "reserved") == 2 and _keys(hq, "sold") == 0  # the other two buyers keep their keys


def test_a_held_payment_whose_refund_the_gateway_refuses_stays_rejected_with_the_refund_due(paying, caplog):
    import logging

    from hq import reviews

    hq, token, _box = paying
    result, trade = _held_for_mismatch(paying, "R5")
    trade.refunded = trade.money  # refunded at the gateway by hand: it refuses another
    with caplog.at_level(logging.WARNING, logger="hq.reviews"):
        resolved = reviews.resolve(hq.service, "op", result["hq_order_id"], "reject")
    assert resolved["status"] == "rejected" and "refund_due" in resolved["reasons"]
    warned = [r.getMessage() for r in caplog.records if r.name == "hq.reviews"]  # an operator must learn of it
    assert len(warned) == 1 and warned[0].startswith(f"refund of {result['hq_order_id']} after review failed: ")
    assert "refused the refund" in warned[0], warned
    assert "refunded" not in resolved["reasons"]
    assert _status(hq, token, "R5")["status"] == "rejected" and _keys(hq, "available") == 2


def test_with_a_gateway_the_per_order_path_and_a_review_approval_also_wait_for_payment(paying):
    """Every path to an approval makes the order payable (its keys reserved), never delivered unpaid."""
    from hq import reviews

    hq, token, box = paying
    hq.set_rules({**OPEN_RULES, "limits": {**OPEN_RULES["limits"], "review_amount_cents": 10_000}})
    known = order("G1", sku="card-p", unit_price_cents=9500)
    assert post_orders(hq, token, "k-g1", [known]).json()["results"][0]["status"] == "pending_payment"
    resp = post_orders(hq, token, "k-g2", [known, order("G2", sku="card-p", unit_price_cents=9500)])
    replayed, fresh = resp.json()["results"]  # a known order in the batch: the per-order path decides G2
    assert replayed["replayed"] and not fresh["replayed"]
    assert (fresh["decision"], fresh["status"], fresh["delivery"]) == ("approve", "pending_payment", None)
    assert fresh["payment"]["amount_cents"] == 9500 and fresh["payment"]["pay_url"].startswith(box.url)
    assert _keys(hq, "reserved") == 2 and _keys(hq, "sold") == 0 and _ledger_entries(hq, fresh["hq_order_id"]) == 0
    held = _order_at(hq, token, "G3", 10_000)
    assert held["status"] == "review"
    resolved = reviews.resolve(hq.service, "op", held["hq_order_id"], "approve")  # both keys are reserved
    assert (resolved["decision"], resolved["status"]) == ("reject", "rejected") and "out_of_stock" in resolved["reasons"]
    hq.seed_card_keys("card-p", 1)
    held = _order_at(hq, token, "G4", 10_000)
    resolved = reviews.resolve(hq.service, "op", held["hq_order_id"], "approve")
    assert (resolved["decision"], resolved["status"]) == ("approve", "pending_payment")
    got = _status(hq, token, "G4")
    assert got["delivery"] is None and got["payment"]["amount_cents"] == 10_000 and _keys(hq, "reserved") == 3
    box.pay(_open_at_sandbox(box, fresh))
    assert len(_wait_status(hq, token, "G2", "delivered")["delivery"]["card_keys"]) == 1
    assert _ledger_entries(hq, fresh["hq_order_id"]) == 1


def _order_at(hq: RunningHQ, token: str, order_id: str, unit_price_cents: int) -> dict[str, Any]:
    resp = post_orders(hq, token, f"k-{order_id}", [order(order_id, sku="card-p", unit_price_cents=unit_price_cents)])
    assert resp.status_code == 200, resp.text
    return resp.json()["results"][0]


def test_an_operator_refunds_a_delivered_order_once_and_the_ledger_is_reversed(paying):
    from hq.errors import ApiError
    from hq.payments import refunds
    from kitcore.errors import InvalidInput

    hq, token, box = paying
    result, trade = _delivered(paying, "R2")
    with pytest.raises(InvalidInput, match="one line"):
        refunds.refund(hq.service, "op", result["hq_order_id"], "two\nlines")
    done = refunds.refund(hq.service, "op", result["hq_order_id"], "buyer complained")
    assert done["status"] == "refunded" and done["amount_cents"] == 9500 and trade.refunded == "95.00"
    assert _refund_entries(hq, result["hq_order_id"]) == 1
    with pytest.raises(ApiError) as again:
        refunds.refund(hq.service, "op", result["hq_order_id"], "buyer complained")
    assert again.value.code == "not_refundable" and trade.refunded == "95.00"
    assert _status(hq, token, "R2")["status"] == "refunded"
    replay = http.get(f"{hq.url}/v1/payments/epay/notify", params=box.notification(trade))
    assert replay.text == "success" and _status(hq, token, "R2")["status"] == "refunded"  # not delivered again
    assert _keys(hq, "sold") == 1 and _ledger_entries(hq, result["hq_order_id"]) == 1


def test_a_refund_the_gateway_refuses_changes_nothing_at_hq(paying):
    from hq.errors import ApiError
    from hq.payments import refunds

    hq, token, box = paying
    result, trade = _delivered(paying, "R3")
    trade.refunded = trade.money  # refunded at the gateway by hand: it refuses another
    with pytest.raises(ApiError) as refused:
        refunds.refund(hq.service, "op", result["hq_order_id"], "again")
    assert refused.value.status == 502 and "refused" in refused.value.detail
    assert _status(hq, token, "R3")["status"] == "delivered" and _refund_entries(hq, result["hq_order_id"]) == 0
    trade.refunded = "0.00"
    assert refunds.refund(hq.service, "op", result["hq_order_id"], "now it works")["status"] == "refunded"


def test_a_notification_sent_while_hq_is_down_lands_once_when_it_is_back(tmp_path, db_url, sandbox):
    from hq.testing import free_port

    port = free_port()
    sandbox.notify_attempts, sandbox.notify_delay = 10, 0.2
    with running_hq(tmp_path, database_url=db_url, port=port, payment_check_seconds=3600) as hq:
        hq.seed_item("card-p", price_cents=9000)
        hq.seed_card_keys("card-p", 1)
        pid, key = sandbox.add_merchant()
        config.configure(hq.service, "tester", "epay", {"api_url": sandbox.url, "pid": pid, "key": key})
        token = hq.issue_licence(SITE, categories=["game"])
        result = _order(hq, token, "D1")
        trade = sandbox.trades[_open_at_sandbox(sandbox, result)]
    sandbox.pay(trade.trade_no)  # HQ is down: the gateway's first attempts find nobody
    time.sleep(1.0)
    assert trade.notified == 0
    with running_hq(tmp_path, database_url=db_url, port=port, operator="back", payment_check_seconds=3600) as hq:
        done = _wait_status(hq, token, "D1", "delivered")
        eventually(lambda: trade.notified == 1, 10, every=0.05, what="the notification acknowledged")
        assert len(done["delivery"]["card_keys"]) == 1
        assert _ledger_entries(hq, result["hq_order_id"]) == 1 and _keys(hq, "sold") == 1


def test_the_fleet_page_shows_the_gateways_and_their_payments_never_the_key(paying):
    import re

    hq, token, box = paying
    _order(hq, token, "F1")
    _delivered(paying, "F2")
    client = httpx.Client(base_url=hq.url, timeout=30)
    assert client.post("/fleet/login", data={"token": hq.operator_token}).status_code == 303
    page = client.get("/fleet").text
    row = re.search(r'<tr data-gateway="epay">.*?</tr>', page, re.S).group(0)
    assert "<td>yes</td>" in row and '<td data-state="pending">1</td>' in row and '<td data-state="paid">1</td>' in row
    assert next(iter(box.merchants.values())) not in page
