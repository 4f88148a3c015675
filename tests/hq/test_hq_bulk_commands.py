"""Bulk enqueue (`hq.commands.enqueue_many`): a command for many or all sites in one INSERT … SELECT and one
NOTIFY, each still the site's own: its next sequence number, its own id, signed for it alone on delivery.

SQLite and PostgreSQL both; the statement counts are taken from the engine, so a per-site loop fails them.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Iterator

import httpx
import pytest
from sqlalchemy import event, select

from hq import commands, licences, push_pg, sites
from hq.models import Command, Site
from hq.service import HQ
from hq.settings import HQSettings
from hq.testing import RunningHQ, seed_fleet
from kitcore.licence.commands import verify_command
from tests.agent.helpers import wait_until
from tests.hq.helpers import auth, open_hq

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq", db_url)  # site-a, licensed
    seed_fleet(service, 300, prefix="bulk")  # 1 in 10 suspended, 1 in 10 revoked
    yield service
    service.close()


def statements(hq: HQ, params: list[Any] | None = None) -> list[str]:
    """Every SQL statement `hq` runs from now on (lower case); their parameters into `params` if given."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        seen.append(statement.lower())
        if params is not None:
            params.append(parameters)

    event.listen(hq.engine, "before_cursor_execute", record)
    return seen


def queued(hq: HQ, type_: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    with hq.read() as conn:
        for row in conn.execute(select(Command.id, Command.seq, Command.type, Command.site_id, Command.payload)
                                .where(Command.type == type_).order_by(Command.seq)):
            found.setdefault(row.site_id, []).append(row)
    return found


def test_every_site_gets_its_own_next_seq_and_id_in_one_insert_and_one_notify(hq: HQ) -> None:
    licences.suspend(hq, "op", "bulk-00001", "first")  # bulk-00001 is at seq 1 already: its next is 2
    seen = statements(hq)
    with hq.session() as s:
        got = commands.enqueue_many(s, Site.status != "revoked", "sync_now", {"why": "fleet-wide"})
    live = {f"bulk-{i:05d}" for i in range(300) if i % 10 != 7} | {"site-a"}
    assert set(got) == live
    assert {site: q.seq for site, q in got.items()} == {site: 2 if site == "bulk-00001" else 1 for site in live}
    assert all(UUID4.fullmatch(q.id) for q in got.values()) and len({q.id for q in got.values()}) == len(live)
    inserts = [sql for sql in seen if sql.startswith(("insert into commands", "with"))]
    notifies = [sql for sql in seen if "pg_notify" in sql]
    assert len(inserts) == 1 and "select" in inserts[0]  # one INSERT … SELECT, not one per site
    assert len(notifies) == (1 if hq.engine.dialect.name == "postgresql" else 0)
    with hq.read() as conn:
        seqs = {row.id: row.command_seq for row in conn.execute(select(Site.id, Site.command_seq))}
    assert all(seqs[site] == got[site].seq for site in live)
    assert seqs["bulk-00007"] == 0  # revoked: not matched, not bumped

    # one command after it, queued the usual way, takes the next number: the sequence has no gap and no twin
    licences.suspend(hq, "op", "bulk-00002", "after the bulk")
    with hq.read() as conn:
        assert list(conn.execute(select(Command.seq, Command.type).where(Command.site_id == "bulk-00002")
                                 .order_by(Command.seq)).all()) == [(1, "sync_now"), (2, "suspend")]


def test_each_delivery_is_signed_for_its_own_site_and_not_handed_out_again_once_applied(hq: HQ) -> None:
    with hq.session() as s:
        got = commands.enqueue_many(s, Site.id.in_(["bulk-00004", "bulk-00005"]), "upgrade",
                                    {"version": "0.9.0", "rollout": "r-1"})
    keys = hq.pinned()
    for site in ("bulk-00004", "bulk-00005"):
        answer = sites.pending_answer(hq, site, f"seed-bulk-{site[-5:]}", 0)
        [token] = answer["commands"]
        envelope = verify_command(token, keys)
        assert (envelope.site, envelope.seq, envelope.id, envelope.type) == (site, 1, got[site].id, "upgrade")
        assert envelope.payload == {"version": "0.9.0", "rollout": "r-1"}
        # the agent acknowledged seq 1: HQ never hands it out again, whatever `after` says
        with hq.connection() as conn:
            commands.acknowledge(conn, site, 1)
            conn.execute(Site.__table__.update().where(Site.id == site).values(applied_seq=1))
        assert sites.pending_answer(hq, site, f"seed-bulk-{site[-5:]}", 0)["commands"] == []
    assert got["bulk-00004"].id != got["bulk-00005"].id


def test_nothing_matched_queues_nothing_and_sends_no_notify(hq: HQ) -> None:
    seen = statements(hq)
    with hq.session() as s:
        assert commands.enqueue_many(s, Site.id == "nobody", "sync_now", {}) == {}
    assert not [sql for sql in seen if "pg_notify" in sql]
    assert queued(hq, "sync_now") == {}


def test_an_unknown_command_type_is_refused_before_anything_changes(hq: HQ) -> None:
    with pytest.raises(ValueError, match="unknown command type"):
        with hq.session() as s:
            commands.enqueue_many(s, Site.status == "active", "explode", {})
    with hq.read() as conn:
        assert conn.execute(select(Site.id).where(Site.command_seq != 0)).first() is None


def test_a_rolled_back_bulk_queues_nothing(hq: HQ) -> None:
    with pytest.raises(RuntimeError):
        with hq.session() as s:
            commands.enqueue_many(s, Site.status == "active", "sync_now", {})
            raise RuntimeError("operator changed their mind")
    assert queued(hq, "sync_now") == {}
    with hq.read() as conn:
        assert conn.execute(select(Site.id).where(Site.command_seq != 0)).first() is None


@pytest.mark.postgres
def test_bulk_and_single_queuings_racing_leave_every_sequence_gapless(tmp_path, hq_pg_server) -> None:
    """Two fleet-wide queuings and single ones at once (PostgreSQL, real concurrency): no deadlock, and every
    site's commands are numbered 1..n with no gap and no twin."""
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server) as url:
        service = open_hq(tmp_path / "hq", url)
        try:
            seed_fleet(service, 200, prefix="race")
            errors: list[BaseException] = []

            def bulk() -> None:
                try:
                    for _ in range(3):
                        with service.session() as s:
                            commands.enqueue_many(s, Site.status != "revoked", "sync_now", {})
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            def single() -> None:
                try:
                    for i in range(0, 200, 7):
                        sites.sync_now(service, "op", f"race-{i:05d}")
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            threads = [threading.Thread(target=f) for f in (bulk, bulk, single)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not errors, errors
            with service.read() as conn:
                rows = conn.execute(select(Command.site_id, Command.seq).order_by(Command.site_id, Command.seq)).all()
                seqs = {row.id: row.command_seq for row in conn.execute(select(Site.id, Site.command_seq))}
            by_site: dict[str, list[int]] = {}
            for site, seq in rows:
                by_site.setdefault(site, []).append(seq)
            for site, numbers in by_site.items():
                assert numbers == list(range(1, len(numbers) + 1)) and seqs[site] == len(numbers), site
            assert len(by_site["race-00000"]) == 6 + 1 and len(by_site["race-00001"]) == 6
        finally:
            service.close()


@pytest.fixture
def other_process(hq_server: RunningHQ) -> Iterator[HQ]:
    other = HQ.open(HQSettings(dir=hq_server.hq_dir, database_url=hq_server.service.settings.database_url),
                    migrate=False)
    yield other
    other.close()


def test_a_bulk_from_another_process_naming_too_many_sites_still_wakes_the_parked_poll(
        hq_server: RunningHQ, other_process: HQ) -> None:
    """1,000 sites with long ids do not fit in one NOTIFY: it names none, and HQ checks its waiters'
    sequences (on SQLite the poller does the same); the parked poll answers with its own command."""
    seed_fleet(hq_server.service, 1000, prefix="a-rather-long-site-name-for-the-payload")
    token = hq_server.issue_licence("push-bulk")
    params: list[Any] = []
    seen = statements(other_process, params)
    answer: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        answer["r"] = httpx.get(f"{hq_server.url}/v1/commands/wait", params={"after": 0, "wait": 30},
                                headers=auth(token), timeout=45)
        answer["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    wait_until(lambda: hq_server.app.state.push.waiting_count >= 1, 10, 0.01, what="a parked long-poll")
    with other_process.session() as s:
        got = commands.enqueue_many(s, Site.status != "revoked", "sync_now", {})
    assert len(got) == 900 + 1  # the 1,000 less their 100 revoked (seed_fleet), plus push-bulk
    thread.join(45)
    assert answer["seconds"] < 10, answer
    [token_out] = answer["r"].json()["commands"]
    envelope = verify_command(token_out, hq_server.service.pinned())
    assert (envelope.site, envelope.seq, envelope.id) == ("push-bulk", 1, got["push-bulk"].id)
    if hq_server.service.engine.dialect.name == "postgresql":
        [sent] = [p for sql, p in zip(seen, params) if "pg_notify" in sql]  # one NOTIFY for all of them
        assert push_pg.EVERY_SITE in str(sent) and "push-bulk" not in str(sent)


def test_a_notify_naming_several_sites_wakes_each_of_them(hq_server: RunningHQ, other_process: HQ) -> None:
    tokens = {site: hq_server.issue_licence(site) for site in ("named-1", "named-2", "named-3")}
    answers: dict[str, float] = {}

    def poll(site: str) -> None:
        started = time.monotonic()
        r = httpx.get(f"{hq_server.url}/v1/commands/wait", params={"after": 0, "wait": 30},
                      headers=auth(tokens[site]), timeout=45)
        if r.json()["commands"]:
            answers[site] = time.monotonic() - started

    threads = [threading.Thread(target=poll, args=(site,), daemon=True) for site in ("named-1", "named-3")]
    for t in threads:
        t.start()
    wait_until(lambda: hq_server.app.state.push.waiting_count >= 2, 10, 0.01, what="two parked long-polls")
    with other_process.session() as s:
        commands.enqueue_many(s, Site.id.in_(list(tokens)), "sync_now", {})
    for t in threads:
        t.join(45)
    assert set(answers) == {"named-1", "named-3"} and max(answers.values()) < 10, answers


def test_fleet_bulk_suspend_and_a_rollout_ring_queue_their_commands_in_one_insert(hq: HQ) -> None:
    from hq import fleet_bulk, rollouts

    chosen = [f"bulk-{i:05d}" for i in range(0, 200) if i % 10 in (0, 1, 3)]  # 3: already suspended
    seen = statements(hq)
    outcome = fleet_bulk.apply(hq, "op", fleet_bulk.parse("suspend", chosen, "chargebacks", ""))
    assert len([sql for sql in seen if "insert into commands" in sql]) == 1
    assert len(outcome.done) == 40 and set(outcome.failed) == {c for c in chosen if c.endswith("3")}
    assert outcome.failed["bulk-00003"] == "site 'bulk-00003' is suspended, not active"
    suspended = queued(hq, "suspend")
    assert set(suspended) == set(outcome.done) and all(len(v) == 1 and v[0].payload == {"reason": "chargebacks"}
                                                       for v in suspended.values())

    seen.clear()
    started = rollouts.start(hq, "op", "0.9.1", [1, 2])
    assert len([sql for sql in seen if "insert into commands" in sql]) == 1
    ring1 = {s["site"] for s in started["sites"] if s["ring"] == 1}
    assert len(ring1) > 40 and set(queued(hq, "upgrade")) == ring1  # the canary ring only, each its own command
