"""The outbox's rules against a site database, with HQ replaced by a scripted client (the boundary).

- HQ's answer lands on a row only while the row is still in the status it was
  sent from; a second or replayed answer changes nothing and audits nothing;
- a final answer (delivered, rejected) records when it was decided; an order
  under review is polled again later; card keys are stored sealed;
- an order HQ did not answer, or a batch HQ failed on, stays pending with one
  more attempt and a later next attempt (never dropped);
- an order HQ refuses as conflicting is isolated and held back the longest.

On SQLite and on PostgreSQL (the decision writer has one statement per dialect).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine, insert, select

from agent.decisions import decision_writer
from agent.hq_client import CardKey, Delivery, HQError, OrderResult
from agent.metrics import AgentMetrics
from agent.outbox import Forwarder, idempotency_key, oldest_pending_age
from sitedb.buyer import Buyer, BuyerBox
from sitedb.engine import make_engine
from sitedb.migrate import upgrade
from sitedb.sealing import open_sealed
from sitedb.tables import audit_log, orders

KEY = os.urandom(32)
T0 = datetime(2025, 6, 15, 8, 0, 0, tzinfo=timezone.utc)


class ScriptedHQ:
    """Answers as told; records what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], str]] = []
        self.answers: dict[str, OrderResult] = {}
        self.fail: HQError | None = None
        self.conflicting: set[str] = set()
        self.polled: list[str] = []

    def submit_orders(self, payloads: list[dict[str, Any]], key: str) -> list[OrderResult]:
        ids = [p["order_id"] for p in payloads]
        self.sent.append((ids, key))
        if self.fail:
            raise self.fail
        if self.conflicting & set(ids):
            raise HQError("orders", "conflict", "order was already sent with a different body", status=422)
        return [self.answers[i] for i in ids if i in self.answers]

    def orders_status(self, order_ids: list[str]) -> list[OrderResult]:
        """An HQ from before `POST /v1/order-status`: the agent asks about each order on its own."""
        raise HQError("order-status", "client", "404 Not Found", status=404)

    def order_status(self, order_id: str) -> OrderResult:
        self.polled.append(order_id)
        if self.fail:
            raise self.fail
        return self.answers[order_id]


def delivered(order_id: str, *secrets: str) -> OrderResult:
    return OrderResult(order_id=order_id, decision="approve", status="delivered", hq_order_id=f"hq-{order_id}",
                       reasons=[], delivery=Delivery([CardKey(serial=f"S-{s}", secret=s) for s in secrets]))


def rejected(order_id: str) -> OrderResult:
    return OrderResult(order_id=order_id, decision="reject", status="rejected", hq_order_id=f"hq-{order_id}",
                       reasons=["blocked_ip"])


def in_review(order_id: str) -> OrderResult:
    return OrderResult(order_id=order_id, decision="review", status="review", hq_order_id=f"hq-{order_id}",
                       reasons=["amount_over:100000"])


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite site database, made once: each test starts from a copy (the mutation runner runs this
    file once per mutant, and migrating costs more than most tests here)."""
    shared = os.environ.get("KITCTL_TEST_TEMPLATES")  # the mutation runner's: made once for all its runs
    path = Path(shared) / "site.sqlite3" if shared else tmp_path_factory.mktemp("site-template") / "site.sqlite3"
    if not path.exists():
        scratch = path.with_suffix(f".{os.getpid()}")
        upgrade(f"sqlite:///{scratch}")
        os.replace(scratch, path)
    return path


@pytest.fixture
def engine(site_db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    if site_db_url.startswith("sqlite:///"):
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), site_db_url.removeprefix("sqlite:///"))
    else:
        upgrade(site_db_url)
    eng = make_engine(site_db_url)
    yield eng
    eng.dispose()


def add_order(engine: Engine, order_id: str, created: datetime = T0, due: datetime | None = None,
              status: str = "pending", attempts: int = 0) -> None:
    with engine.begin() as conn:
        conn.execute(insert(orders).values(
            id=order_id, sku="G-1", item_name="card", category="game", quantity=1, unit_price_cents=1000,
            discount_cents=0, total_cents=1000, hq_price_cents=900, currency="CNY",
            buyer_sealed=BuyerBox(KEY).seal(order_id, Buyer("c@example.cn", "p1", "198.51.100.7")),
            buyer_contact_index=BuyerBox(KEY).contact_index("c@example.cn"), buyer_region="CN", password_hash="x",
            extras={}, status=status, reasons=[], attempts=attempts, next_attempt_at=due or T0, created_at=created,
            updated_at=created))


def row(engine: Engine, order_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(orders).where(orders.c.id == order_id)).one()


def audited(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [r.detail for r in conn.execute(select(audit_log).where(audit_log.c.action == "order_decided")
                                               .order_by(audit_log.c.id))]


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else (value if value.tzinfo else value.replace(tzinfo=timezone.utc))


def forwarder(engine: Engine, hq: ScriptedHQ, **kw: Any) -> Forwarder:
    return Forwarder(engine, hq, AgentMetrics(), "xingchen", KEY, **kw)  # type: ignore[arg-type]


def test_answers_land_with_their_consequences(engine):
    for i, oid in enumerate(("A1", "A2", "A3")):
        add_order(engine, oid, created=T0 + timedelta(seconds=i))
    hq = ScriptedHQ()
    hq.answers = {"A1": delivered("A1", "K-1", "K-2"), "A2": rejected("A2"), "A3": in_review("A3")}
    before = datetime.now(timezone.utc)
    outcome = forwarder(engine, hq, review_poll=30.0).forward_once()
    after = datetime.now(timezone.utc)
    assert (outcome.sent, outcome.decided, outcome.missing, outcome.contacted_hq) == (3, 3, 0, True)
    assert hq.sent == [(["A1", "A2", "A3"], idempotency_key("xingchen", ["A1", "A2", "A3"]))]

    a1, a2, a3 = row(engine, "A1"), row(engine, "A2"), row(engine, "A3")
    assert (a1.status, a1.decision, a1.hq_order_id, a1.public_reason) == ("delivered", "approve", "hq-A1", None)
    assert open_sealed(KEY, a1.delivery_sealed) == {"card_keys": [{"serial": "S-K-1", "secret": "K-1"},
                                                                  {"serial": "S-K-2", "secret": "K-2"}]}
    assert before <= utc(a1.decided_at) <= after
    assert (a2.status, a2.decision, list(a2.reasons), a2.public_reason) == (
        "rejected", "reject", ["blocked_ip"], "declined by HQ risk control")
    assert a2.delivery_sealed is None and before <= utc(a2.decided_at) <= after
    assert (a3.status, a3.public_reason, a3.decided_at, a3.attempts) == (
        "review", "under review by HQ risk control", None, 0)
    assert before + timedelta(seconds=30) <= utc(a3.next_attempt_at) <= after + timedelta(seconds=30)
    assert audited(engine) == [{"order_id": o, "status": s, "decision": d} for o, s, d in
                               (("A1", "delivered", "approve"), ("A2", "rejected", "reject"), ("A3", "review", "review"))]


def test_an_answer_lands_only_on_a_row_still_in_the_status_it_was_sent_from(engine):
    add_order(engine, "B1")
    add_order(engine, "B2", status="delivered")  # decided meanwhile (a replay after a crash, a second answer)
    writer = decision_writer(engine)
    now = datetime.now(timezone.utc)
    decided = [{"id": oid, "status": "rejected", "decision": "reject", "reasons": ["x"], "hq_order_id": "h",
                "public_reason": "declined", "delivery_sealed": None, "decided_at": now, "attempts": None,
                "next_attempt_at": None} for oid in ("B1", "B2", "B-missing")]
    with engine.begin() as conn:
        changed = writer.write(conn, decided, "pending", now)
    assert [(c.id, c.status, c.decision, c.sku, c.category, c.quantity, c.total_cents, c.currency) for c in changed] == [
        ("B1", "rejected", "reject", "G-1", "game", 1, 1000, "CNY")]
    assert BuyerBox(KEY).open("B1", changed[0].buyer_sealed).contact == "c@example.cn"
    assert row(engine, "B2").status == "delivered" and row(engine, "B2").decision is None
    assert audited(engine) == [{"order_id": "B1", "status": "rejected", "decision": "reject"}]
    with engine.begin() as conn:  # the same answer again changes nothing
        assert writer.write(conn, decided, "pending", now) == []
    assert len(audited(engine)) == 1


def test_none_keeps_the_stored_value_and_last_error_is_cleared(engine):
    add_order(engine, "C1", attempts=3)
    with engine.begin() as conn:
        conn.execute(orders.update().where(orders.c.id == "C1").values(last_error="timeout: HQ", delivery_sealed="old"))
    now = datetime(2025, 6, 15, 9, 0, 0, tzinfo=timezone.utc)
    with engine.begin() as conn:
        decision_writer(engine).write(conn, [{"id": "C1", "status": "review", "decision": "review", "reasons": ["r"],
                                              "hq_order_id": "h1", "public_reason": "under review",
                                              "delivery_sealed": None, "decided_at": None, "attempts": None,
                                              "next_attempt_at": None}], "pending", now)
    c1 = row(engine, "C1")
    assert (c1.status, c1.attempts, c1.delivery_sealed, c1.last_error, c1.decided_at) == ("review", 3, "old", None, None)
    assert utc(c1.next_attempt_at) == T0 and utc(c1.updated_at) == now and list(c1.reasons) == ["r"]


def test_a_value_given_replaces_the_stored_one_and_each_decided_row_is_audited_by_the_agent(engine):
    for oid in ("D1", "D2"):
        add_order(engine, oid, attempts=2)
        with engine.begin() as conn:
            conn.execute(orders.update().where(orders.c.id == oid).values(last_error="timeout: HQ",
                                                                           delivery_sealed="old"))
    now = datetime(2025, 6, 15, 9, 0, 0, tzinfo=timezone.utc)
    decided_at = datetime(2025, 6, 15, 8, 59, 0, tzinfo=timezone.utc)
    due = datetime(2025, 6, 15, 9, 5, 0, tzinfo=timezone.utc)
    decided = [{"id": "D1", "status": "delivered", "decision": "approve", "reasons": ["ok", "fast"],
                "hq_order_id": "hq-D1", "public_reason": "delivered", "delivery_sealed": "new-D1",
                "decided_at": decided_at, "attempts": 5, "next_attempt_at": due},
               {"id": "D2", "status": "review", "decision": "review", "reasons": [], "hq_order_id": "hq-D2",
                "public_reason": "under review", "delivery_sealed": None, "decided_at": None, "attempts": 0,
                "next_attempt_at": due}]
    with engine.begin() as conn:
        changed = decision_writer(engine).write(conn, decided, "pending", now)
    assert sorted((c.id, c.status, c.decision) for c in changed) == [("D1", "delivered", "approve"),
                                                                     ("D2", "review", "review")]
    d1, d2 = row(engine, "D1"), row(engine, "D2")
    assert (d1.status, d1.decision, list(d1.reasons), d1.hq_order_id, d1.public_reason, d1.delivery_sealed,
            d1.attempts, d1.last_error) == ("delivered", "approve", ["ok", "fast"], "hq-D1", "delivered", "new-D1",
                                            5, None)
    assert (utc(d1.decided_at), utc(d1.next_attempt_at), utc(d1.updated_at)) == (decided_at, due, now)
    assert (d2.status, d2.decision, list(d2.reasons), d2.hq_order_id, d2.public_reason, d2.delivery_sealed,
            d2.attempts, d2.decided_at, utc(d2.next_attempt_at)) == (
        "review", "review", [], "hq-D2", "under review", "old", 0, None, due)
    with engine.connect() as conn:
        entries = conn.execute(select(audit_log.c.actor, audit_log.c.at, audit_log.c.detail)
                               .where(audit_log.c.action == "order_decided").order_by(audit_log.c.id)).all()
    assert sorted((e.actor, utc(e.at), e.detail["order_id"], e.detail["status"], e.detail["decision"])
                  for e in entries) == [("agent", now, "D1", "delivered", "approve"),
                                        ("agent", now, "D2", "review", "review")]
    assert all(set(e.detail) == {"order_id", "status", "decision"} for e in entries)


def test_only_due_pending_orders_are_sent_oldest_first_up_to_the_batch(engine):
    now = datetime.now(timezone.utc)
    add_order(engine, "late", created=T0 + timedelta(seconds=5))
    add_order(engine, "early", created=T0)
    add_order(engine, "later", created=T0 + timedelta(seconds=9))
    add_order(engine, "not-due", created=T0 - timedelta(days=1), due=now + timedelta(hours=1))
    add_order(engine, "done", created=T0 - timedelta(days=1), status="delivered")
    hq = ScriptedHQ()
    hq.answers = {o: rejected(o) for o in ("early", "late", "later")}
    assert forwarder(engine, hq, batch=2).forward_once().sent == 2
    assert hq.sent[0][0] == ["early", "late"]
    assert [o.id for o in forwarder(engine, hq).due_orders(10)] == ["later"]
    assert [o.id for o in forwarder(engine, hq).due_orders(10, exclude={"later"})] == []


def test_a_failed_batch_stays_pending_with_a_later_attempt(engine):
    add_order(engine, "D1", attempts=2)
    hq = ScriptedHQ()
    hq.fail = HQError("orders", "unavailable", "503 from HQ", status=503)
    before = datetime.now(timezone.utc)
    with pytest.raises(HQError):
        forwarder(engine, hq, backoff_base=10.0, backoff_cap=1000.0).forward_once()
    d1 = row(engine, "D1")
    assert (d1.status, d1.attempts, d1.last_error) == ("pending", 3, "unavailable: 503 from HQ")
    # attempt 3: the delay is drawn between half and all of min(cap, 10 s × 2³) = 80 s
    assert before + timedelta(seconds=40) <= utc(d1.next_attempt_at) <= datetime.now(timezone.utc) + timedelta(seconds=80)


def test_an_order_hq_did_not_answer_is_tried_again_later(engine):
    add_order(engine, "E1")
    add_order(engine, "E2", created=T0 + timedelta(seconds=1))
    hq = ScriptedHQ()
    hq.answers = {"E1": rejected("E1")}
    outcome = forwarder(engine, hq, backoff_base=10.0).forward_once()
    assert (outcome.sent, outcome.decided, outcome.missing) == (2, 1, 1)
    e2 = row(engine, "E2")
    assert (e2.status, e2.attempts, e2.last_error) == ("pending", 1, "HQ gave no result for this order")
    assert utc(e2.next_attempt_at) > datetime.now(timezone.utc) + timedelta(seconds=9)


def test_a_conflicting_order_is_isolated_and_held_back_the_longest(engine, caplog):
    import logging

    for i, oid in enumerate(("F1", "F2", "F3")):
        add_order(engine, oid, created=T0 + timedelta(seconds=i))
    hq = ScriptedHQ()
    hq.answers = {o: rejected(o) for o in ("F1", "F2", "F3")}
    hq.conflicting = {"F2"}
    before = datetime.now(timezone.utc)
    with caplog.at_level(logging.ERROR, logger="agent.outbox"):
        outcome = forwarder(engine, hq, backoff_cap=600.0).forward_once()
    errors = [(r.getMessage(), r.order_id, r.detail) for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [("HQ refuses an order as conflicting with an earlier one; kept pending", "F2",
                       "order was already sent with a different body")]  # the site's operator learns which, and why
    assert outcome.decided == 2
    assert [ids for ids, _ in hq.sent] == [["F1", "F2", "F3"], ["F1"], ["F2"], ["F3"]]
    assert [key for _, key in hq.sent[1:]] == [idempotency_key("xingchen", [o]) for o in ("F1", "F2", "F3")]
    f2 = row(engine, "F2")
    assert (f2.status, f2.attempts, f2.last_error) == ("pending", 1, "conflict: order was already sent with a different body")
    assert before + timedelta(seconds=600) <= utc(f2.next_attempt_at) <= datetime.now(timezone.utc) + timedelta(seconds=600)
    assert (row(engine, "F1").status, row(engine, "F3").status) == ("rejected", "rejected")


def test_another_refusal_of_the_batch_is_not_split(engine):
    add_order(engine, "G1")
    add_order(engine, "G2")
    hq = ScriptedHQ()
    hq.fail = HQError("orders", "conflict", "idempotency key in flight", status=409)
    with pytest.raises(HQError):
        forwarder(engine, hq).forward_once()
    assert len(hq.sent) == 1 and row(engine, "G1").attempts == 1


def test_reviews_are_polled_when_due_and_resolved_from_review_only(engine):
    now = datetime.now(timezone.utc)
    add_order(engine, "R1", status="review", due=now - timedelta(seconds=1), attempts=0)
    add_order(engine, "R2", status="review", due=now - timedelta(seconds=2), attempts=2)
    add_order(engine, "R3", status="review", due=now + timedelta(hours=1))
    hq = ScriptedHQ()
    hq.answers = {"R1": delivered("R1", "K-9"), "R2": in_review("R2")}
    fwd = forwarder(engine, hq, review_poll=30.0, backoff_cap=300.0)
    assert fwd.poll_reviews_once() == 1
    assert hq.polled == ["R2", "R1"]  # the longest due first; R3 is not due
    r1, r2 = row(engine, "R1"), row(engine, "R2")
    assert (r1.status, r1.decision) == ("delivered", "approve") and r1.decided_at is not None
    assert open_sealed(KEY, r1.delivery_sealed)["card_keys"][0]["secret"] == "K-9"
    assert (r2.status, r2.attempts) == ("review", 3)
    # attempt 2 of the review poll: between half and all of min(max(30, 300), 30 s × 2²) = 120 s
    assert now + timedelta(seconds=59) <= utc(r2.next_attempt_at) <= datetime.now(timezone.utc) + timedelta(seconds=120)


def test_each_answer_is_counted_under_its_own_metric(engine):
    """Forwarded orders by HQ's decision; resolved reviews and resolved payments each by the order's new status."""
    now = datetime.now(timezone.utc)
    add_order(engine, "M1")
    add_order(engine, "M2", status="review", due=now - timedelta(seconds=1))
    add_order(engine, "M3", status="pending_payment", due=now - timedelta(seconds=1))
    hq = ScriptedHQ()
    hq.answers = {"M1": rejected("M1"), "M2": delivered("M2", "K-2"), "M3": rejected("M3")}
    fwd = forwarder(engine, hq)
    fwd.forward_once()
    assert fwd.poll_reviews_once() == 2
    counted = {(name, labels): getattr(fwd.metrics, name).labels(labels)._value.get()
               for name in ("orders_forwarded", "reviews_resolved", "payments_resolved")
               for labels in ("reject", "rejected", "delivered")}
    assert {k: v for k, v in counted.items() if v} == {
        ("orders_forwarded", "reject"): 1, ("reviews_resolved", "delivered"): 1, ("payments_resolved", "rejected"): 1}


def test_an_order_awaiting_payment_stores_where_the_buyer_pays(engine):
    """The buyer's order page shows the pay link, QR, amount and expiry HQ sent, as sent."""
    from agent.hq_client import Payment

    add_order(engine, "PP1")
    pay = Payment(pay_url="https://pay.example/submit.php?t=1", qr="weixin://1", amount_cents=1000, currency="CNY",
                  expires_at="2025-06-15T08:15:00Z", gateway="epay")
    hq = ScriptedHQ()
    hq.answers = {"PP1": OrderResult(order_id="PP1", decision="approve", status="pending_payment", hq_order_id="hq-PP1",
                                     payment=pay)}
    forwarder(engine, hq).forward_once()
    stored = row(engine, "PP1")
    assert (stored.status, stored.decided_at, stored.delivery_sealed) == ("pending_payment", None, None)
    assert stored.payment == {"pay_url": "https://pay.example/submit.php?t=1", "qr": "weixin://1", "amount_cents": 1000,
                              "currency": "CNY", "expires_at": "2025-06-15T08:15:00Z", "gateway": "epay",
                              "status": "pending"}


def test_the_body_hq_gets_for_an_order_is_written_out_whole(engine):
    """HQ hashes this body to know a resent order (so it must not change) and judges the buyer by it."""
    from agent.outbox import order_payload

    add_order(engine, "B1", created=datetime(2025, 6, 15, 8, 0, 0, 123456, tzinfo=timezone.utc))
    fwd = forwarder(engine, ScriptedHQ())
    (due,) = fwd.due_orders(10)
    assert order_payload(due, fwd.buyers) == {
        "order_id": "B1", "sku": "G-1", "quantity": 1, "unit_price_cents": 1000, "total_cents": 1000, "currency": "CNY",
        "buyer": {"account": "p1", "contact": "c@example.cn", "ip": "198.51.100.7", "region": "CN"},
        "created_at": "2025-06-15T08:00:00.123456Z"}


@pytest.mark.parametrize("status, decision, public", [
    ("expired", "approve", "not paid in time"), ("refunded", "approve", "payment refunded"),
    ("rejected", "reject", "declined by HQ risk control"), ("delivered", "approve", None)])
def test_a_final_answer_to_an_order_awaiting_payment_ends_its_polling(engine, status, decision, public):
    """expired, refunded, rejected and delivered are final: the order is decided now and not asked about again."""
    now = datetime.now(timezone.utc)
    add_order(engine, "E1", status="pending_payment", due=now - timedelta(seconds=1), attempts=3)
    hq = ScriptedHQ()
    hq.answers = {"E1": OrderResult(order_id="E1", decision=decision, status=status, hq_order_id="hq-E1")}
    assert forwarder(engine, hq).poll_reviews_once() == 1
    e1 = row(engine, "E1")
    assert (e1.status, e1.public_reason) == (status, public)
    assert now <= utc(e1.decided_at) <= datetime.now(timezone.utc)
    assert forwarder(engine, hq).poll_reviews_once() == 0 and hq.polled == ["E1"]


def test_a_forwarder_sends_at_most_200_orders_a_request_unless_told_otherwise(engine):
    """HQ takes 1..200 orders a request (hq.schemas.OrderBatch): the default batch is its maximum."""
    for i in range(201):
        add_order(engine, f"N{i:03}", created=T0 + timedelta(seconds=i))
    hq = ScriptedHQ()
    forwarder(engine, hq).forward_once()
    assert [len(ids) for ids, _ in hq.sent] == [200] and hq.sent[0][0][-1] == "N199"


def test_an_order_held_back_once_is_treated_like_any_other_once_its_buyer_data_opens(engine):
    """Holding an order back lasts for its batch: repaired and sent again, an order HQ leaves unanswered is
    postponed as unanswered, like any other."""
    add_order(engine, "H1")
    with engine.begin() as conn:  # sealed under another site key
        other = BuyerBox(os.urandom(32)).seal("H1", Buyer("c@example.cn", "p1", "198.51.100.7"))
        conn.execute(orders.update().where(orders.c.id == "H1").values(buyer_sealed=other))
    hq = ScriptedHQ()
    fwd = forwarder(engine, hq)
    fwd.forward_once()
    assert hq.sent == [] and row(engine, "H1").attempts == 1
    with engine.begin() as conn:  # repaired, and due again
        conn.execute(orders.update().where(orders.c.id == "H1").values(
            buyer_sealed=BuyerBox(KEY).seal("H1", Buyer("c@example.cn", "p1", "198.51.100.7")), next_attempt_at=T0))
    assert fwd.forward_once().missing == 1 and [ids for ids, _ in hq.sent] == [["H1"]]
    h1 = row(engine, "H1")
    assert (h1.status, h1.attempts, h1.last_error) == ("pending", 2, "HQ gave no result for this order")


def test_a_review_answer_kept_when_a_later_poll_fails(engine):
    now = datetime.now(timezone.utc)
    add_order(engine, "S1", status="review", due=now - timedelta(seconds=2))
    add_order(engine, "S2", status="review", due=now - timedelta(seconds=1))
    hq = ScriptedHQ()
    hq.answers = {"S1": rejected("S1")}

    def status(order_id: str) -> OrderResult:
        if order_id == "S2":
            raise HQError("order", "unavailable", "down", status=503)
        return hq.answers[order_id]

    hq.order_status = status  # type: ignore[method-assign]
    with pytest.raises(HQError):
        forwarder(engine, hq).poll_reviews_once()
    assert row(engine, "S1").status == "rejected" and row(engine, "S2").status == "review"


def test_oldest_pending_age_counts_pending_and_review(engine):
    assert oldest_pending_age(engine) == (0, 0, 0.0)
    add_order(engine, "P1", created=datetime.now(timezone.utc) - timedelta(seconds=90))
    add_order(engine, "P2")
    add_order(engine, "V1", status="review")
    add_order(engine, "X1", status="rejected", created=T0 - timedelta(days=9))
    pending, review, age = oldest_pending_age(engine)
    assert (pending, review) == (2, 1)
    assert age >= (datetime.now(timezone.utc) - T0).total_seconds() - 5


# -- with the agent's clock set by the test -------------------------------------------------------------

NOW = datetime(2025, 6, 15, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def frozen(monkeypatch) -> datetime:  # type: ignore[no-untyped-def]
    from agent import outbox

    monkeypatch.setattr(outbox, "utcnow", lambda: NOW)
    return NOW


def test_a_postponed_order_records_when_and_why_and_no_other_row_changes(engine, frozen):
    add_order(engine, "H1", due=NOW)  # due at this very instant: sent
    add_order(engine, "H2", due=NOW + timedelta(microseconds=1))  # not due yet: neither sent nor touched
    add_order(engine, "H3", due=NOW - timedelta(seconds=1))  # sent, then decided meanwhile
    hq = ScriptedHQ()
    hq.fail = HQError("orders", "unavailable", "x" * 300, status=503)
    fwd = forwarder(engine, hq, backoff_base=10.0, backoff_cap=1000.0)
    batch = fwd.due_orders(10)
    assert sorted(o.id for o in batch) == ["H1", "H3"]
    with engine.begin() as conn:
        conn.execute(orders.update().where(orders.c.id == "H3").values(status="delivered"))
    with pytest.raises(HQError):
        fwd.submit(batch)
    h1, h2, h3 = row(engine, "H1"), row(engine, "H2"), row(engine, "H3")
    assert (h1.status, h1.attempts, h1.last_error) == ("pending", 1, "unavailable: " + "x" * 187)  # 200 characters
    assert utc(h1.updated_at) == NOW
    # attempt 1: between half and all of min(1000, 10 s × 2¹) = 20 s after now
    assert NOW + timedelta(seconds=10) <= utc(h1.next_attempt_at) <= NOW + timedelta(seconds=20)
    assert (h2.attempts, h2.last_error, utc(h2.next_attempt_at)) == (0, None, NOW + timedelta(microseconds=1))
    assert (h3.status, h3.attempts, h3.last_error, utc(h3.next_attempt_at)) == (
        "delivered", 0, None, NOW - timedelta(seconds=1))


def test_review_polls_ask_only_about_due_reviews_two_hundred_at_a_time(engine, frozen):
    for i in range(201):  # R000 is due the longest; R200 exactly now (one batch asks about 200)
        add_order(engine, f"R{i:03d}", status="review", due=NOW - timedelta(seconds=200 - i))
    add_order(engine, "later", status="review", due=NOW + timedelta(microseconds=1))
    add_order(engine, "P1", due=NOW - timedelta(hours=1))  # pending, due: forwarding's business, not the poll's
    hq = ScriptedHQ()
    hq.answers = {f"R{i:03d}": in_review(f"R{i:03d}") for i in range(201)}
    fwd = forwarder(engine, hq, review_poll=30.0, backoff_cap=300.0)
    assert fwd.poll_reviews_once() == 0  # all still under review
    assert hq.polled == [f"R{i:03d}" for i in range(200)]
    r00, r50 = row(engine, "R000"), row(engine, "R200")
    # attempt 0 of the review poll: between half and all of min(max(30, 300), 30 s × 2⁰) = 30 s after now
    assert r00.attempts == 1 and NOW + timedelta(seconds=15) <= utc(r00.next_attempt_at) <= NOW + timedelta(seconds=30)
    assert (r50.attempts, utc(r50.next_attempt_at)) == (0, NOW)  # not asked about: untouched
    assert (row(engine, "later").attempts, row(engine, "P1").attempts) == (0, 0)
    hq.polled.clear()
    assert fwd.poll_reviews_once() == 0
    assert hq.polled == ["R200"]  # due exactly now; the others wait for their next poll
    hq.answers = {}
    hq.polled.clear()
    with engine.begin() as conn:
        conn.execute(orders.update().where(orders.c.status == "review").values(next_attempt_at=NOW + timedelta(days=1)))
    assert fwd.poll_reviews_once() == 0 and hq.polled == []


def test_close_waits_for_the_sender_thread_to_end(engine):
    import threading

    def senders() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("forward-send")]

    forwarder(engine, ScriptedHQ()).close()  # never sent anything: nothing to end
    add_order(engine, "Q1")
    hq = ScriptedHQ()
    hq.answers = {"Q1": rejected("Q1")}
    fwd = forwarder(engine, hq)
    before = senders()
    assert fwd.forward_burst().decided == 1
    assert len(senders()) == len(before) + 1
    fwd.close()
    assert senders() == before


def test_a_batch_of_decisions_costs_one_statement_on_postgres_and_three_on_sqlite(engine):
    """PostgreSQL: one UPDATE … FROM with the audit INSERT fed by its RETURNING; SQLite: SELECT, UPDATE, INSERT."""
    from sqlalchemy import event

    for i in range(5):
        add_order(engine, f"W{i}")
    now = datetime(2025, 6, 15, 9, 0, 0, tzinfo=timezone.utc)
    decided = [{"id": f"W{i}", "status": "rejected", "decision": "reject", "reasons": [], "hq_order_id": f"h{i}",
                "public_reason": "declined", "delivery_sealed": None, "decided_at": now, "attempts": None,
                "next_attempt_at": None} for i in range(5)]
    statements: list[str] = []
    with engine.begin() as conn:
        event.listen(conn, "before_cursor_execute", lambda *args: statements.append(args[2]))
        assert len(decision_writer(engine).write(conn, decided, "pending", now)) == 5
    assert len(statements) == (1 if engine.dialect.name == "postgresql" else 3), statements
    assert len(audited(engine)) == 5


def test_after_an_outage_only_orders_held_back_by_it_are_due_at_once(engine, frozen):
    """HQ answers again: a pending order whose last try could not reach HQ (connect, timeout) is due now; one
    refused for another reason keeps its back-off, and one already due or not pending is left as it is."""
    later, earlier = NOW + timedelta(hours=1), NOW - timedelta(seconds=1)
    cases = {  # order -> (status, next attempt, last error, next attempt expected after the outage)
        "U1": ("pending", later, "connect: connection refused", NOW),
        "U2": ("pending", later, "timeout: read timed out", NOW),
        "U3": ("pending", later, "unavailable: 503 from HQ", later),
        "U4": ("pending", later, "server: upstream connect: refused", later),
        "U5": ("pending", later, None, later),
        "U6": ("pending", earlier, "connect: connection refused", earlier),  # already due: keeps its place
        "U7": ("review", later, "connect: connection refused", later),  # reviews are polled on their own clock
        "U8": ("pending", NOW, "connect: connection refused", NOW),  # due this instant: already due, not counted
    }
    for order_id, (status, due, error, _) in cases.items():
        add_order(engine, order_id, due=due, status=status)
        with engine.begin() as conn:
            conn.execute(orders.update().where(orders.c.id == order_id).values(last_error=error))
    assert forwarder(engine, ScriptedHQ()).due_after_outage() == 2
    got = {order_id: utc(row(engine, order_id).next_attempt_at) for order_id in cases}
    assert got == {order_id: expected for order_id, (*_, expected) in cases.items()}
    assert {row(engine, o).last_error for o in ("U1", "U2")} == {cases["U1"][2], cases["U2"][2]}  # the reason stays


def test_an_order_awaiting_payment_is_asked_about_again_after_the_payment_poll_a_review_after_its_backoff(
        engine, frozen):
    add_order(engine, "Q1", due=NOW, status="pending_payment")
    add_order(engine, "Q2", due=NOW, status="review")
    hq = ScriptedHQ()
    hq.answers = {"Q1": OrderResult(order_id="Q1", decision="approve", status="pending_payment", hq_order_id="hq-Q1"),
                  "Q2": in_review("Q2")}
    fwd = forwarder(engine, hq, payment_poll=5.0, review_poll=30.0, backoff_cap=300.0)
    assert fwd.poll_reviews_once() == 0  # nothing changed at HQ
    q1, q2 = row(engine, "Q1"), row(engine, "Q2")
    assert (q1.status, q1.attempts, utc(q1.next_attempt_at)) == ("pending_payment", 1, NOW + timedelta(seconds=5))
    # a review backs off: attempt 0 waits between half and all of 30 s
    assert q2.attempts == 1 and NOW + timedelta(seconds=15) <= utc(q2.next_attempt_at) <= NOW + timedelta(seconds=30)


def queued(engine: Engine, ids: list[str]) -> ScriptedHQ:
    """Pending orders, oldest first, and an HQ that rejects each."""
    for i, order_id in enumerate(ids):
        add_order(engine, order_id, created=T0 + timedelta(seconds=i))
    hq = ScriptedHQ()
    hq.answers = {order_id: rejected(order_id) for order_id in ids}
    return hq


def test_a_burst_sends_at_most_25_batches_and_says_more_are_due(engine):
    hq = queued(engine, [f"B{i:02}" for i in range(27)])
    fwd = forwarder(engine, hq, batch=1)
    try:
        outcome = fwd.forward_burst()
    finally:
        fwd.close()
    assert (outcome.sent, outcome.decided, outcome.more) == (25, 25, True) and len(hq.sent) == 25
    assert [ids for ids, _ in hq.sent] == [[f"B{i:02}"] for i in range(25)]  # oldest first, one a batch


def test_plugins_learn_each_decision_with_the_buyers_contact_and_nothing_secret(engine):
    add_order(engine, "N1")
    add_order(engine, "N2", status="review")  # sealed under another site key: its box does not open here
    with engine.begin() as conn:
        other = BuyerBox(os.urandom(32)).seal("N2", Buyer("c@example.cn", "p1", "198.51.100.7"))
        conn.execute(orders.update().where(orders.c.id == "N2").values(buyer_sealed=other))
    hq = ScriptedHQ()
    hq.answers = {"N1": delivered("N1", "s3cret"), "N2": rejected("N2")}
    events: list[tuple[str, dict[str, Any]]] = []
    fwd = forwarder(engine, hq, emit=lambda event, payload: events.append((event, payload)))
    fwd.forward_once()
    fwd.poll_reviews_once()
    common = {"sku": "G-1", "category": "game", "quantity": 1, "total_cents": 1000, "currency": "CNY"}
    assert events == [
        ("order_decided", {"order_id": "N1", **common, "status": "delivered", "decision": "approve",
                           "buyer_contact": "c@example.cn"}),
        ("order_decided", {"order_id": "N2", **common, "status": "rejected", "decision": "reject",
                           "buyer_contact": None}),  # the contact is unknown, not empty
    ]


def test_a_burst_adds_up_unanswered_orders_and_says_nothing_more_is_due_when_the_outbox_is_empty(engine):
    for i in range(4):
        add_order(engine, f"M{i}", created=T0 + timedelta(seconds=i))
    hq = ScriptedHQ()
    hq.answers = {"M0": rejected("M0"), "M2": rejected("M2")}  # M1 and M3 go unanswered
    fwd = forwarder(engine, hq, batch=2)
    try:
        outcome = fwd.forward_burst()
    finally:
        fwd.close()
    assert (outcome.sent, outcome.decided, outcome.missing, outcome.more) == (4, 2, 2, False)


def test_a_burst_whose_answers_cannot_be_written_raises_that_error_after_the_request_in_flight(engine):
    hq = queued(engine, [f"W{i}" for i in range(4)])
    fwd = forwarder(engine, hq, batch=2)

    def broken_store(orders: Any, results: Any) -> Any:
        raise RuntimeError("the site database went away")

    fwd.store = broken_store  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="went away"):
            fwd.forward_burst()
    finally:
        fwd.close()
    assert [ids for ids, _ in hq.sent] == [["W0", "W1"], ["W2", "W3"]]  # the next batch had left and was let finish
    assert {row(engine, f"W{i}").status for i in range(4)} == {"pending"}  # sent again later


def test_an_order_whose_buyer_data_does_not_open_is_not_sent_and_waits_the_longest_with_an_error_logged(
        engine, frozen, caplog):
    import logging

    add_order(engine, "K1")
    add_order(engine, "K2", created=T0 + timedelta(seconds=1))
    with engine.begin() as conn:  # sealed under another site key
        other = BuyerBox(os.urandom(32)).seal("K2", Buyer("c@example.cn", "p1", "198.51.100.7"))
        conn.execute(orders.update().where(orders.c.id == "K2").values(buyer_sealed=other))
    hq = ScriptedHQ()
    hq.answers = {"K1": rejected("K1")}
    with caplog.at_level(logging.ERROR, logger="agent.outbox"):
        forwarder(engine, hq, backoff_cap=600.0).forward_once()
    assert [ids for ids, _ in hq.sent] == [["K1"]]
    k2 = row(engine, "K2")
    assert (k2.status, k2.attempts, k2.last_error) == ("pending", 1, "buyer data does not open with the site key")
    assert utc(k2.next_attempt_at) == NOW + timedelta(seconds=600)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "does not open" in r.getMessage()]
    assert len(errors) == 1 and errors[0].orders == 1
    assert errors[0].getMessage() == "orders whose buyer data does not open with the site key are kept pending"


def test_the_body_gives_the_orders_time_in_utc_whatever_the_hosts_zone(engine, monkeypatch):
    """A site's host may run on China Standard Time: the body still says 08:00 UTC, with its Z."""
    import time

    from agent.outbox import order_payload

    add_order(engine, "Z1", created=datetime(2025, 6, 15, 8, 0, 0, 123456, tzinfo=timezone.utc))
    fwd = forwarder(engine, ScriptedHQ())
    (due,) = fwd.due_orders(10)
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert order_payload(due, fwd.buyers)["created_at"] == "2025-06-15T08:00:00.123456Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_poll_asks_first_about_the_order_due_the_longest_whatever_its_status(engine):
    """One poll asks about at most `limit` orders: those waiting the longest, reviews and payments alike (the
    statuses are not taken one after the other)."""
    now = datetime.now(timezone.utc)
    add_order(engine, "PAY", status="pending_payment", due=now - timedelta(minutes=1))
    add_order(engine, "REV", status="review", due=now - timedelta(minutes=10))
    hq = ScriptedHQ()
    hq.answers = {"PAY": OrderResult(order_id="PAY", decision="approve", status="pending_payment", hq_order_id="hq-P"),
                  "REV": in_review("REV")}
    forwarder(engine, hq).poll_reviews_once(limit=1)
    assert hq.polled == ["REV"]


def test_by_default_a_failed_order_waits_1_5_s_times_two_to_the_attempt_and_a_payment_is_asked_about_after_2_s(
        engine, frozen, monkeypatch):
    """The defaults written out: backoff base 1.5 s (attempt 1: up to 3 s), payment poll 2 s, review poll 30 s."""
    from agent import outbox

    monkeypatch.setattr(outbox.random, "random", lambda: 1.0)  # the jitter at its top: the whole delay
    add_order(engine, "F1", due=NOW - timedelta(seconds=1))
    add_order(engine, "PP", due=NOW - timedelta(seconds=1))
    add_order(engine, "RV", due=NOW - timedelta(seconds=1))
    hq = ScriptedHQ()
    hq.fail = HQError("orders", "unavailable", "503", status=503)
    fwd = Forwarder(engine, hq, AgentMetrics(), "xingchen", KEY)  # type: ignore[arg-type]
    with pytest.raises(HQError):
        fwd.forward_once()
    assert utc(row(engine, "F1").next_attempt_at) == NOW + timedelta(seconds=3)
    with engine.begin() as conn:  # an order held back the longest waits the default cap, 300 s
        fwd._postpone([row(engine, "F1")], None, "held", max_backoff=True)
    assert utc(row(engine, "F1").next_attempt_at) == NOW + timedelta(seconds=300)
    hq.fail = None
    hq.answers = {"PP": OrderResult(order_id="PP", decision="approve", status="pending_payment", hq_order_id="hq-PP"),
                  "RV": in_review("RV"), "F1": in_review("F1")}
    with engine.begin() as conn:
        conn.execute(orders.update().values(next_attempt_at=NOW - timedelta(seconds=1)))
    fwd.forward_once()
    assert [utc(row(engine, i).next_attempt_at) for i in ("PP", "RV")] == [
        NOW + timedelta(seconds=2), NOW + timedelta(seconds=30)]


def test_a_final_answer_keeps_the_rows_next_attempt_time(engine):
    due = datetime(2025, 6, 15, 7, 0, 0, tzinfo=timezone.utc)
    add_order(engine, "D1", due=due)
    hq = ScriptedHQ()
    hq.answers = {"D1": delivered("D1", "s1")}
    forwarder(engine, hq).forward_once()
    assert (row(engine, "D1").status, utc(row(engine, "D1").next_attempt_at)) == ("delivered", due)


def test_orders_made_at_the_same_moment_are_sent_in_id_order(engine):
    add_order(engine, "B", created=T0)
    add_order(engine, "A", created=T0)
    fwd = forwarder(engine, ScriptedHQ())
    assert [o.id for o in fwd.due_orders(1)] == ["A"]


def test_only_the_events_a_plugin_wants_are_built_and_emitted(engine):
    add_order(engine, "W1")
    hq = ScriptedHQ()
    hq.answers = {"W1": rejected("W1")}
    asked: list[str] = []
    events: list[str] = []

    def wants(event: str) -> bool:
        asked.append(event)
        return event == "order_decided"

    forwarder(engine, hq, emit=lambda event, payload: events.append(payload["order_id"]), wants=wants).forward_once()
    assert (asked, events) == (["order_decided"], ["W1"])


def test_an_hq_with_the_batch_status_endpoint_is_asked_once_about_every_due_order(engine):
    now = datetime.now(timezone.utc)
    for i in ("S1", "S2"):
        add_order(engine, i, status="review", due=now - timedelta(seconds=5))

    class BatchHQ(ScriptedHQ):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[list[str]] = []

        def orders_status(self, order_ids: list[str]) -> list[OrderResult]:
            self.asked.append(list(order_ids))
            return [rejected(i) for i in order_ids]

    hq = BatchHQ()
    assert forwarder(engine, hq).poll_reviews_once() == 2
    assert (sorted(hq.asked[0]), len(hq.asked), hq.polled) == (["S1", "S2"], 1, [])
    assert row(engine, "S1").status == "rejected"


def test_the_oldest_order_goes_first_whatever_its_id(engine):
    add_order(engine, "A", created=T0 + timedelta(seconds=1))
    add_order(engine, "B", created=T0)
    assert [o.id for o in forwarder(engine, ScriptedHQ()).due_orders(1)] == ["B"]


@pytest.mark.parametrize("answer, attempts", [(in_review, 0), (rejected, 3)])
def test_an_answer_that_is_not_final_starts_the_attempts_again_and_a_final_one_keeps_them(engine, answer, attempts):
    add_order(engine, "R1", attempts=3)
    hq = ScriptedHQ()
    hq.answers = {"R1": answer("R1")}
    forwarder(engine, hq).forward_once()
    assert (row(engine, "R1").status, row(engine, "R1").attempts) == (answer("R1").status, attempts)


def test_a_refused_batch_of_two_is_split_to_find_the_conflicting_order(engine):
    add_order(engine, "T1")
    add_order(engine, "T2", created=T0 + timedelta(seconds=1))
    hq = ScriptedHQ()
    hq.conflicting = {"T2"}
    hq.answers = {"T1": rejected("T1")}
    forwarder(engine, hq).forward_once()
    assert [ids for ids, _ in hq.sent] == [["T1", "T2"], ["T1"], ["T2"]]
    assert row(engine, "T1").status == "rejected"


def test_an_hq_answering_405_to_the_batch_status_is_asked_order_by_order(engine):
    add_order(engine, "V5", status="review", due=datetime.now(timezone.utc) - timedelta(seconds=5))

    class OldHQ(ScriptedHQ):
        def orders_status(self, order_ids: list[str]) -> list[OrderResult]:
            raise HQError("order-status", "client", "405 Method Not Allowed", status=405)

    hq = OldHQ()
    hq.answers = {"V5": rejected("V5")}
    assert forwarder(engine, hq).poll_reviews_once() == 1 and hq.polled == ["V5"]


def test_the_oldest_pending_age_leaves_out_older_orders_in_other_statuses(engine):
    now = datetime.now(timezone.utc)
    add_order(engine, "P1", created=now - timedelta(seconds=60))
    add_order(engine, "V1", status="review", created=now - timedelta(days=3))
    _, _, age = oldest_pending_age(engine)
    assert 60 <= age < 3600


def test_a_batchs_idempotency_key_is_the_site_and_the_digest_of_its_lines():
    import hashlib

    digest = hashlib.sha256(b"xingchen\nA1\nB2").hexdigest()
    assert idempotency_key("xingchen", ["A1", "B2"]) == f"xingchen-{digest[:40]}"


def test_at_most_twenty_of_hqs_reasons_are_kept(engine):
    add_order(engine, "M1")
    hq = ScriptedHQ()
    hq.answers = {"M1": OrderResult(order_id="M1", decision="reject", status="rejected", hq_order_id="hq-M1",
                                    reasons=[f"r{i}" for i in range(21)])}
    forwarder(engine, hq).forward_once()
    assert row(engine, "M1").reasons == [f"r{i}" for i in range(20)]
