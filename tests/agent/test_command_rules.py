"""What the agent does with HQ's signed commands, stated as rules (a site database, no HQ server).

- A suspension or revocation HQ made outlives a new licence: a renewal sent while the site is suspended is
  stored (tier, term, grants) but the site stays suspended, with HQ's reason.
- Otherwise the new licence's own term decides: an active licence clears the old term's notice.
- A licence that does not verify, or is for another site, is refused: nothing changes, the refusal is counted
  under its reason and logged once with the command's sequence and the verifier's words.
- A licence with the same categories asks for no full resync; other categories do.
- Every refused command is logged once with its reason, however odd the token (even one no UTF-8 can encode).
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine, select

from agent.commands import CommandProcessor, Effects
from agent.licence import evaluate, install_start_licence
from agent.metrics import AgentMetrics
from agent.state import ensure_state, read_state
from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import HQKeyStore
from kitcore.licence.token import issue_licence
from sitedb.tables import hq_commands
from tests.agent.helpers import migrated_engine, sqlite_url

SITE = "xingchen"
HQ_URL = "https://hq.example.invalid"
DAY = 86400


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.store = HQKeyStore(tmp_path / "hq")
        self.store.init()
        self.engine: Engine = migrated_engine(sqlite_url(tmp_path))
        ensure_state(self.engine, SITE)
        self.metrics = AgentMetrics()
        self.effects: list[Effects] = []
        self.proc = CommandProcessor(self.engine, self.store.pinned(), SITE, self.metrics, self.effects.append)
        self.seq = 0

    def licence(self, site: str = SITE, tier: str = "pro", categories: tuple[str, ...] = ("game",),
                days: int = 30, issued: int | None = None) -> str:
        return issue_licence(self.store, site, tier, list(categories), days, HQ_URL, now=issued)

    def install(self, token: str) -> None:
        held = evaluate(token, self.store.pinned())
        install_start_licence(self.engine, held, "active", None)

    def send(self, type_: str, **payload: Any) -> int:
        self.seq += 1
        now = int(time.time())
        token = jws.sign({"id": str(uuid.uuid4()), "seq": self.seq, "type": type_, "site": SITE, "iat": now,
                          "exp": now + 600, "payload": payload}, self.store, "kitctl-command+jwt")
        return self.proc.process([token])

    def rejected(self, reason: str) -> float:
        return self.metrics.commands_rejected.labels(reason)._value.get()

    def outcome(self) -> str:
        with self.engine.connect() as conn:
            return conn.execute(select(hq_commands.c.outcome).where(hq_commands.c.seq == self.seq)).scalar_one()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    r.install(r.licence())
    yield r
    r.engine.dispose()


def test_a_renewal_sent_while_suspended_is_stored_but_the_suspension_and_its_reason_stay(rig):
    assert rig.send("suspend", reason="unpaid invoice") == 1
    renewal = rig.licence(tier="flagship", days=365)
    assert rig.send("licence", token=renewal) == 1
    state = read_state(rig.engine)
    assert (state.licence_token, state.tier) == (renewal, "flagship")
    assert (state.licence_status, state.status_reason) == ("suspended", "unpaid invoice")
    assert rig.effects[-1].new_licence is not None and rig.effects[-1].new_licence.token == renewal


def test_a_renewal_of_a_licence_in_grace_makes_the_site_active_and_clears_the_notice(rig):
    lapsed = rig.licence(days=1, issued=int(time.time()) - 3 * DAY)  # expired two days ago: grace
    rig.install(lapsed)
    before = read_state(rig.engine)
    assert before.licence_status == "grace" and "renew" in before.status_reason
    assert rig.send("licence", token=rig.licence(days=30)) == 1
    after = read_state(rig.engine)
    assert (after.licence_status, after.status_reason) == ("active", None)


def test_a_renewal_that_is_itself_in_grace_says_so(rig):
    lapsed = rig.licence(days=1, issued=int(time.time()) - 3 * DAY)
    assert rig.send("licence", token=lapsed) == 1
    state = read_state(rig.engine)
    assert state.licence_status == "grace"
    assert state.status_reason == "licence expired 2 days ago; renew it (grace period)"


def test_a_licence_that_does_not_verify_is_refused_counted_and_logged_with_its_sequence(rig, caplog):
    kept = read_state(rig.engine).licence_token
    forged = rig.licence()[:-4] + "AAAA"
    with pytest.raises(LicenceError) as verifier:
        evaluate(forged, rig.store.pinned())
    caplog.set_level(logging.WARNING, logger="agent.commands")
    assert rig.send("licence", token=forged) == 1  # applied: as a refusal, acknowledged to HQ
    assert read_state(rig.engine).licence_token == kept and read_state(rig.engine).applied_seq == rig.seq
    assert rig.rejected("malformed") == 1
    assert rig.outcome() == f"refused: {verifier.value}"
    [record] = [r for r in caplog.records if r.name == "agent.commands"]
    assert record.getMessage() == "HQ sent a licence that does not verify; kept the current one"
    assert (record.levelno, record.seq, record.detail) == (logging.WARNING, rig.seq, str(verifier.value))


def test_a_licence_for_another_site_is_refused_and_counted_as_wrong_site(rig):
    kept = read_state(rig.engine).licence_token
    assert rig.send("licence", token=rig.licence(site="another-site")) == 1
    assert read_state(rig.engine).licence_token == kept
    assert rig.rejected("wrong_site") == 1 and rig.rejected("malformed") == 0
    assert rig.outcome() == "refused: licence is for site 'another-site'"


def test_only_a_change_of_categories_asks_for_a_full_resync(rig):
    assert rig.send("licence", token=rig.licence(days=60)) == 1
    assert rig.effects[-1].full_resync is False
    assert rig.send("licence", token=rig.licence(tier="flagship", categories=("game", "software"))) == 1
    assert rig.effects[-1].full_resync is True
    assert read_state(rig.engine).categories == ["game", "software"]


def test_a_refused_command_is_logged_once_with_its_reason_whatever_its_token(rig, caplog):
    caplog.set_level(logging.WARNING, logger="agent.commands")
    other = jws.sign({"id": "c-x", "seq": 1, "type": "suspend", "site": "another-site", "iat": int(time.time()),
                      "exp": int(time.time()) + 600, "payload": {}}, rig.store, "kitctl-command+jwt")
    unencodable = "\ud800.x.y"  # a lone surrogate: JSON can carry it, UTF-8 cannot encode it
    for _ in range(2):
        assert rig.proc.process([other, unencodable]) == 0
    records = [r for r in caplog.records if r.name == "agent.commands"]
    assert [(r.getMessage(), r.reason) for r in records][0] == (
        "command rejected: it is for site 'another-site'", "wrong_site")
    assert len(records) == 2 and records[1].reason not in (None, "wrong_site")
    assert rig.rejected("wrong_site") == 1
    assert read_state(rig.engine).licence_status == "active"


def _audit(engine: Engine) -> list[tuple[str, str, dict[str, Any]]]:
    from sitedb.tables import audit_log

    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(audit_log.c.actor, audit_log.c.action, audit_log.c.detail)
                                               .order_by(audit_log.c.id))]


def _status(rig: Rig) -> tuple[str, str | None]:
    state = read_state(rig.engine)
    return state.licence_status, state.status_reason


def test_suspend_revoke_and_resume_set_the_status_with_hqs_reason_cut_at_300_or_a_default(rig):
    assert rig.send("suspend", reason="unpaid invoice") == 1
    assert (_status(rig), rig.outcome()) == (("suspended", "unpaid invoice"), "suspended")
    assert rig.send("resume") == 1
    assert (_status(rig), rig.outcome()) == (("active", None), "resumed (active)")
    rig.send("suspend")
    assert _status(rig) == ("suspended", "licence suspended by HQ")
    rig.send("revoke", reason="é" * 301)
    assert (_status(rig), rig.outcome()) == (("revoked", "é" * 300), "revoked")
    rig.send("revoke", reason="")
    assert _status(rig) == ("revoked", "licence revoked by HQ")


def test_resume_gives_back_the_status_the_licences_term_says(rig):
    rig.install(rig.licence(days=1, issued=int(time.time()) - 3 * DAY))  # in grace
    rig.send("suspend", reason="checking")
    rig.send("resume")
    assert _status(rig) == ("grace", "licence expired 2 days ago; renew it (grace period)")
    assert rig.outcome() == "resumed (grace)"
    from agent.state import update_state

    with rig.engine.begin() as conn:  # a stored licence that no longer verifies (say, HQ's keys rotated)
        update_state(conn, licence_token="x.y.z", licence_status="suspended", status_reason="checking")
    rig.send("resume")
    assert (_status(rig), rig.outcome()) == (("active", None), "resumed (active)")


def test_sync_now_and_support_bundle_ask_the_rest_of_the_agent_for_exactly_that(rig):
    rig.send("sync_now")
    assert (rig.effects[-1], rig.outcome()) == (Effects(sync_now=True), "sync requested")
    request = str(uuid.uuid4())
    rig.send("support_bundle", request_id=request)
    assert (rig.effects[-1], rig.outcome()) == (Effects(support_bundle=request), f"support bundle {request} requested")
    for bad in (request.upper(), request + "0", "0" + request, request.replace("-", ""), 42, None):
        rig.send("support_bundle", request_id=bad)
        assert (rig.effects[-1], rig.outcome()) == (Effects(), "refused: support bundle request id is not a UUID")
    assert rig.metrics.command_outcomes.labels("support_bundle", "refused")._value.get() == 6
    assert rig.metrics.command_outcomes.labels("support_bundle", "applied")._value.get() == 1


def test_an_applied_command_is_recorded_acknowledged_counted_logged_and_audited(rig, caplog):
    caplog.set_level(logging.INFO, logger="agent.commands")
    rig.send("suspend", reason="fraud check")
    [logged] = [r for r in caplog.records if r.name == "agent.commands"]
    assert (logged.levelno, logged.getMessage(), logged.type, logged.seq, logged.outcome) == (
        logging.INFO, "applied HQ command", "suspend", 1, "suspended")
    with rig.engine.connect() as conn:
        row = conn.execute(select(hq_commands).where(hq_commands.c.seq == 1)).one()
    assert (row.type, row.payload, row.outcome, row.applied_at is not None) == (
        "suspend", {"reason": "fraud check"}, "suspended", True)
    assert read_state(rig.engine).applied_seq == 1
    m = rig.metrics
    assert (m.commands_applied.labels("suspend")._value.get(), m.command_outcomes.labels("suspend", "applied")
            ._value.get(), m.command_outcomes.labels("suspend", "refused")._value.get(), m.applied_seq._value.get()) \
        == (1, 1, 0, 1)
    assert _audit(rig.engine)[-1] == ("agent", "command_suspend", {"seq": 1, "outcome": "suspended"})


def test_a_licence_token_is_kept_only_in_the_signed_copy_of_the_command(rig):
    renewal = rig.licence(days=90)
    rig.send("licence", token=renewal, note="yearly")
    with rig.engine.connect() as conn:
        row = conn.execute(select(hq_commands).where(hq_commands.c.seq == 1)).one()
    assert row.payload == {"token": "<token>", "note": "yearly"} and renewal not in str(row.payload)
    assert row.outcome.startswith("licence pro until ")


def test_commands_of_one_heartbeat_apply_in_sequence_order_and_refused_ones_do_not_block(rig):
    def signed(seq: int, type_: str, site: str = SITE, **payload: Any) -> str:
        now = int(time.time())
        return jws.sign({"id": f"c-{seq}-{type_}", "seq": seq, "type": type_, "site": site, "iat": now,
                         "exp": now + 600, "payload": payload}, rig.store, "kitctl-command+jwt")

    tokens = [signed(3, "resume"), signed(9, "suspend", site="another-site"), signed(2, "suspend", reason="x")]
    assert rig.proc.process(tokens) == 2
    assert [a[1:] for a in _audit(rig.engine) if a[1].startswith("command_")] == [
        ("command_suspend", {"seq": 2, "outcome": "suspended"}), ("command_resume", {"seq": 3, "outcome": "resumed (active)"})]
    assert read_state(rig.engine).applied_seq == 3 and _status(rig) == ("active", None)
    assert rig.metrics.applied_seq._value.get() == 3


def test_a_command_is_written_before_it_acts_and_one_cut_short_is_applied_at_the_next_start(rig, monkeypatch, caplog):
    now = int(time.time())

    def signed(seq: int, id_: str, exp_in: int = 600, site: str = SITE) -> str:
        return jws.sign({"id": id_, "seq": seq, "type": "suspend", "site": site, "iat": now - 7200,
                         "exp": now + exp_in, "payload": {"reason": id_}}, rig.store, "kitctl-command+jwt")

    crash = RuntimeError("power cut")
    monkeypatch.setattr(rig.proc, "_change_state", lambda *a: (_ for _ in ()).throw(crash))
    with pytest.raises(RuntimeError):
        rig.proc.process([signed(1, "first")])
    monkeypatch.undo()
    assert rig.metrics.command_outcomes.labels("suspend", "failed")._value.get() == 1
    assert (_status(rig), read_state(rig.engine).applied_seq) == (("active", None), 0)
    with rig.engine.connect() as conn:
        assert conn.execute(select(hq_commands.c.id, hq_commands.c.applied_at)).all() == [("first", None)]
    # another command may not take the sequence number the written one holds
    caplog.set_level(logging.WARNING, logger="agent.commands")
    assert rig.proc.process([signed(1, "imposter")]) == 0
    assert rig.rejected("replayed") == 1
    assert [r.getMessage() for r in caplog.records if r.name == "agent.commands"] == [
        "command rejected: seq 1 already used"]
    # HQ sends the written one again: it is applied once
    assert rig.proc.process([signed(1, "first")]) == 1
    assert _status(rig) == ("suspended", "first")
    # at start, a written command not yet applied is applied even if it expired meanwhile; one that HQ's later
    # commands overtook (its seq is at or below the applied one) is not
    from sqlalchemy import insert

    with rig.engine.begin() as conn:
        conn.execute(insert(hq_commands).values(id="overtaken", seq=2, type="suspend", payload={},
                                                token=signed(2, "overtaken")))
    assert rig.proc.process([signed(3, "third")]) == 1
    with rig.engine.begin() as conn:
        conn.execute(insert(hq_commands).values(id="late", seq=4, type="suspend", payload={},
                                                token=signed(4, "late", exp_in=-3600)))
        conn.execute(insert(hq_commands).values(id="foreign", seq=5, type="suspend", payload={},
                                                token=signed(5, "foreign", site="another-site")))
    fresh = CommandProcessor(rig.engine, rig.store.pinned(), SITE, rig.metrics)
    assert fresh.resume_unapplied() == 1
    assert _status(rig) == ("suspended", "late") and read_state(rig.engine).applied_seq == 4
    assert rig.rejected("wrong_site") == 1
    assert fresh.resume_unapplied() == 0


def test_resume_or_a_new_licence_makes_orders_held_back_by_refusals_due_now(rig):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from sitedb.tables import orders
    from tests.agent.helpers import write_orders

    later = datetime.now(timezone.utc) + timedelta(hours=1)
    held, done, soon = write_orders(rig.engine, 3, "card-1")
    with rig.engine.begin() as conn:
        conn.execute(update(orders).values(next_attempt_at=later))
        conn.execute(update(orders).where(orders.c.id == done).values(status="delivered"))
        conn.execute(update(orders).where(orders.c.id == soon).values(next_attempt_at=datetime.now(timezone.utc)
                                                                      - timedelta(seconds=5)))

    def due() -> dict[str, bool]:
        with rig.engine.connect() as conn:
            rows = conn.execute(select(orders.c.id, orders.c.next_attempt_at)).all()
        return {i: (at if at.tzinfo else at.replace(tzinfo=timezone.utc)) <= datetime.now(timezone.utc)
                for i, at in rows}

    rig.send("suspend")
    rig.send("resume")
    assert rig.effects[-1].retry_orders is True
    assert due() == {held: True, done: False, soon: True}
    rig.send("resume")
    assert rig.effects[-1].retry_orders is False  # nothing was waiting
    with rig.engine.begin() as conn:
        conn.execute(update(orders).where(orders.c.id == held).values(next_attempt_at=later))
    rig.send("licence", token=rig.licence(days=60))
    assert rig.effects[-1].retry_orders is True and due()[held] is True
    rig.send("licence", token=rig.licence(days=90))
    assert rig.effects[-1].retry_orders is False


def test_commands_cut_short_are_applied_at_start_in_sequence_order(rig):
    """Whatever order the database returns them in (SQLite is made to return unordered rows reversed)."""
    from sqlalchemy import event, insert

    now = int(time.time())
    with rig.engine.begin() as conn:
        for seq, type_ in ((2, "suspend"), (3, "resume")):
            token = jws.sign({"id": f"c-{seq}", "seq": seq, "type": type_, "site": SITE, "iat": now, "exp": now + 600,
                              "payload": {"reason": "held"}}, rig.store, "kitctl-command+jwt")
            conn.execute(insert(hq_commands).values(id=f"c-{seq}", seq=seq, type=type_, payload={}, token=token))
    event.listen(rig.engine, "connect", lambda conn, _: conn.execute("PRAGMA reverse_unordered_selects = ON"))
    rig.engine.dispose()
    assert CommandProcessor(rig.engine, rig.store.pinned(), SITE, rig.metrics).resume_unapplied() == 2
    assert [a[1:] for a in _audit(rig.engine) if a[1].startswith("command_")] == [
        ("command_suspend", {"seq": 2, "outcome": "suspended"}), ("command_resume", {"seq": 3, "outcome": "resumed (active)"})]
    assert _status(rig) == ("active", None) and read_state(rig.engine).applied_seq == 3


def test_an_order_already_due_is_not_counted_as_held(rig, monkeypatch):
    """Only orders whose next attempt is later than now were held back; one due this instant asks for no retry."""
    from datetime import datetime, timezone

    from sqlalchemy import update

    import agent.commands
    from sitedb.tables import orders
    from tests.agent.helpers import write_orders

    instant = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(agent.commands, "utcnow", lambda: instant)
    write_orders(rig.engine, 1, "card-1")
    with rig.engine.begin() as conn:
        conn.execute(update(orders).values(next_attempt_at=instant))
    rig.send("suspend")
    rig.send("resume")
    assert rig.effects[-1].retry_orders is False


def test_each_refusal_is_logged_in_its_own_words_at_the_time_given(rig, tmp_path, caplog):
    from kitcore.licence.commands import CommandRefused, verify_command

    caplog.set_level(logging.WARNING, logger="agent.commands")
    forger = HQKeyStore(tmp_path / "forger")
    forger.init()
    now = int(time.time())

    def signed(store: HQKeyStore, seq: int) -> str:
        return jws.sign({"id": str(uuid.uuid4()), "seq": seq, "type": "sync_now", "site": SITE, "iat": now,
                         "exp": now + 600, "payload": {}}, store, "kitctl-command+jwt")

    forged = signed(forger, 1)
    with pytest.raises(CommandRefused) as verifier:
        verify_command(forged, rig.store.pinned())
    assert rig.proc.process([forged]) == 0
    assert rig.proc.process([signed(rig.store, 1)], now=now + 600 + 61) == 0  # a minute's tolerance, then expired
    assert rig.proc.process([signed(rig.store, 1)], now=now) == 1
    assert rig.proc.process([signed(rig.store, 1)]) == 0
    assert [r.getMessage() for r in caplog.records if r.name == "agent.commands"] == [
        str(verifier.value), "command rejected: seq 1 expired", "command rejected: seq 1 was already applied"]


def test_an_upgrade_is_stored_for_the_host_service_and_a_bad_version_is_refused(rig):
    rig.send("upgrade", version="0.2.0", rollout="r1")
    assert (rig.effects[-1], rig.outcome()) == (Effects(), "upgrade to 0.2.0 handed to the host service")
    with rig.engine.connect() as conn:  # the signed copy the host service reads and verifies again
        stored = conn.execute(select(hq_commands.c.token, hq_commands.c.type).where(hq_commands.c.seq == 1)).one()
    assert stored.type == "upgrade" and stored.token.count(".") == 2
    for bad in ("0.2 0", "-rc", "", None, 2, "a" * 129, "0.2.0\n"):
        rig.send("upgrade", version=bad)
        assert rig.outcome() == "refused: upgrade version is not an image tag", bad
    assert rig.metrics.command_outcomes.labels("upgrade", "refused")._value.get() == 7


def test_a_review_decision_makes_that_orders_poll_due_now_and_only_a_waiting_one(rig):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from sitedb.tables import orders
    from tests.agent.helpers import write_orders

    later = datetime.now(timezone.utc) + timedelta(hours=1)
    waiting, done = write_orders(rig.engine, 2, "card-1")
    with rig.engine.begin() as conn:
        conn.execute(update(orders).values(next_attempt_at=later))
        conn.execute(update(orders).where(orders.c.id == waiting).values(status="review"))
        conn.execute(update(orders).where(orders.c.id == done).values(status="delivered"))

    def due(order_id: str) -> bool:
        with rig.engine.connect() as conn:
            at = conn.execute(select(orders.c.next_attempt_at).where(orders.c.id == order_id)).scalar_one()
        return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)) < later

    rig.send("review_decided", order=done)
    assert (rig.effects[-1], rig.outcome(), due(done)) == (Effects(), f"review of {done} decided (not waiting here)",
                                                           False)
    rig.send("review_decided", order=waiting)
    assert (rig.effects[-1], rig.outcome(), due(waiting)) == (Effects(poll_reviews=True),
                                                              f"review of {waiting} decided", True)
    for bad in ("", "a b", "x" * 65, None, 7, waiting + "\n"):
        rig.send("review_decided", order=bad)
        assert rig.outcome() == "refused: review decision names no order id", bad
