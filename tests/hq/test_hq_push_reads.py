"""The push channel's batched reads (`hq.push_reads`): many polls answered by one read, each answer exactly
what its own read (`hq.sites.pending_answer`) gives. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator

import httpx
import pytest
from sqlalchemy import select, update

from hq import commands, licences, sites
from hq.errors import ApiError
from hq.models import Site
from hq.push_reads import Ask, PendingReads, answer_many
from hq.service import HQ
from hq.testing import RunningHQ, seed_fleet
from kitcore.licence.commands import verify_command
from tests.agent.helpers import wait_until
from tests.hq.helpers import auth, open_hq


@pytest.fixture
def hq(tmp_path, db_url) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq", db_url)
    seed_fleet(service, 40, prefix="rd")
    yield service
    service.close()


def _claims(hq: HQ, answer: dict[str, Any]) -> list[tuple[str, int, str]]:
    keys = hq.pinned()
    return [(e.site, e.seq, e.type) for e in (verify_command(t, keys) for t in answer["commands"])]


def test_each_answer_of_a_batch_is_the_single_reads_answer(hq: HQ) -> None:
    for i in (1, 2, 4):
        sites.sync_now(hq, "op", f"rd-{i:05d}")
    licences.suspend(hq, "op", "rd-00002", "unpaid")  # rd-00002: seq 1 sync_now, seq 2 suspend
    with hq.session() as s:
        s.execute(update(Site).where(Site.id == "rd-00004").values(applied_seq=1))  # acknowledged
    asks = [Ask("rd-00001", "seed-rd-00001", 0), Ask("rd-00002", "seed-rd-00002", 0),
            Ask("rd-00002", "seed-rd-00002", 1), Ask("rd-00002", "seed-rd-00002", 99),
            Ask("rd-00004", "seed-rd-00004", 0), Ask("rd-00005", "seed-rd-00005", 0),
            Ask("rd-00005", "seed-rd-00001", 0),  # another site's licence: refused as the single read refuses it
            Ask("nobody", "seed-rd-00001", 0), Ask("rd-00007", "seed-rd-00007", 0)]  # 7: revoked, still answered
    batch = answer_many(hq, asks)
    for ask, got in zip(asks, batch):
        try:
            alone: Any = sites.pending_answer(hq, ask.site_id, ask.jti, ask.after)
        except ApiError as exc:
            assert isinstance(got, ApiError) and (got.status, got.detail) == (exc.status, exc.detail), ask
            continue
        assert not isinstance(got, ApiError), ask
        assert got["licence"] == alone["licence"] and _claims(hq, got) == _claims(hq, alone), ask
    answers = dict(zip(range(len(asks)), batch))
    assert _claims(hq, answers[1]) == [("rd-00002", 1, "sync_now"), ("rd-00002", 2, "suspend")]  # type: ignore[arg-type]
    assert _claims(hq, answers[2]) == [("rd-00002", 2, "suspend")]  # type: ignore[arg-type]
    assert _claims(hq, answers[3]) == [] and _claims(hq, answers[4]) == []  # type: ignore[arg-type]
    assert isinstance(answers[6], ApiError) and isinstance(answers[7], ApiError)


def test_polls_asking_together_are_read_in_far_fewer_reads_than_polls(hq: HQ) -> None:
    with hq.session() as s:
        commands.enqueue_many(s, Site.status != "revoked", "sync_now", {})

    async def ask_all() -> tuple[list[Any], int]:
        reads = PendingReads(hq)
        got = await asyncio.gather(*(reads.answer(f"rd-{i:05d}", f"seed-rd-{i:05d}", 0) for i in range(40)),
                                   return_exceptions=True)
        return got, reads.batches

    got, batches = asyncio.run(ask_all())
    assert batches <= 2, batches
    for i, answer in enumerate(got):
        assert _claims(hq, answer) == ([] if i % 10 == 7 else [(f"rd-{i:05d}", 1, "sync_now")])


def test_a_failed_read_fails_its_polls_and_the_next_ones_are_read_again(hq: HQ, monkeypatch) -> None:
    import hq.push_reads as module

    calls = {"n": 0}
    real = module.answer_many

    def flaky(service: HQ, asks: list[Ask]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return real(service, asks)

    monkeypatch.setattr(module, "answer_many", flaky)

    async def twice() -> tuple[Any, Any]:
        reads = PendingReads(hq)
        first = await asyncio.gather(reads.answer("rd-00001", "seed-rd-00001", 0), return_exceptions=True)
        second = await reads.answer("rd-00001", "seed-rd-00001", 0)
        return first[0], second

    first, second = asyncio.run(twice())
    assert isinstance(first, RuntimeError) and second["licence"]["status"] == "active"


def test_a_fleet_wide_command_wakes_every_parked_poll_with_its_own_command(hq_server: RunningHQ) -> None:
    tokens = {f"wk-{i}": hq_server.issue_licence(f"wk-{i}") for i in range(6)}
    answers: dict[str, Any] = {}

    def poll(site: str) -> None:
        answers[site] = httpx.get(f"{hq_server.url}/v1/commands/wait", params={"after": 0, "wait": 30},
                                  headers=auth(tokens[site]), timeout=45).json()

    threads = [threading.Thread(target=poll, args=(site,), daemon=True) for site in tokens]
    for t in threads:
        t.start()
    wait_until(lambda: hq_server.app.state.push.waiting_count >= len(tokens), 10, 0.01, what="parked polls")
    with hq_server.service.session() as s:
        got = commands.enqueue_many(s, Site.id.in_(list(tokens)), "sync_now", {})
    for t in threads:
        t.join(45)
    keys = hq_server.service.pinned()
    for site, answer in answers.items():
        [token] = answer["commands"]
        envelope = verify_command(token, keys)
        assert (envelope.site, envelope.id, envelope.seq) == (site, got[site].id, got[site].seq)
    with hq_server.service.read() as conn:
        assert conn.execute(select(Site.id).where(Site.id.in_(list(tokens)), Site.command_seq == 0)).first() is None


def test_among_selects_exactly_the_ids_in_one_statement_on_postgresql_and_bounded_lists_on_sqlite(
        hq: HQ, monkeypatch) -> None:
    from hq import db

    monkeypatch.setattr(db, "IN_LIST_MAX", 7)  # SQLite: 40 sites need six lists
    wanted = [f"rd-{i:05d}" for i in range(0, 40, 3)] + ["nobody", "rd-00001'; --"]
    with hq.read() as conn:
        conditions = db.among(conn, Site.id, wanted)
        found = [row.id for c in conditions for row in conn.execute(select(Site.id).where(c))]
        postgres = conn.dialect.name == "postgresql"
    assert sorted(found) == [f"rd-{i:05d}" for i in range(0, 40, 3)]
    assert len(conditions) == (1 if postgres else 3)  # 16 ids: one array parameter, or lists of at most 7
