"""The heartbeat's fast path: caches and batching never change what a site is told (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from hq.models import Command, Site
from kitcore.licence import jws
from kitcore.licence.token import issue_licence, verify_licence
from tests.hq.helpers import auth, http, order, post_orders

BEAT = {"version": "0.2.0", "applied_seq": 0, "health": {"db": "ok"}, "counters": {"orders_total": 1}}


def beat(hq, token: str, **changes):  # type: ignore[no-untyped-def]
    return http.post(f"{hq.url}/v1/heartbeat", headers=auth(token), json={**BEAT, **changes})


def command_types(hq, reply) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    payloads = [jws.verify(c, hq.service.pinned(), typ="kitctl-command+jwt") for c in reply["commands"]]
    return [(p["seq"], p["type"]) for p in payloads]


def test_revoke_takes_effect_on_the_next_beat_despite_the_token_cache(hq_server):
    from hq import licences

    token = hq_server.issue_licence("xingchen")
    assert beat(hq_server, token).json()["licence"] == {"status": "active", "reason": None}  # token now cached
    assert http.get(f"{hq_server.url}/v1/catalog", headers=auth(token)).status_code == 200  # and for the catalog
    licences.revoke(hq_server.service, "test", "xingchen", "contract ended")
    reply = beat(hq_server, token).json()
    assert reply["licence"] == {"status": "revoked", "reason": "contract ended"}
    assert command_types(hq_server, reply) == [(1, "revoke")]
    r = http.get(f"{hq_server.url}/v1/catalog", headers=auth(token))
    assert r.status_code == 403 and r.json()["error"] == "licence_revoked"


def test_cached_token_of_a_suspended_licence_is_refused_on_orders(hq_server):
    from hq import licences

    hq_server.seed_item("game-100")
    hq_server.seed_card_keys("game-100", 2)
    token = hq_server.issue_licence("xingchen")
    assert post_orders(hq_server, token, "k1", [order("o-1")]).status_code == 200  # token now cached
    beat(hq_server, token)
    licences.suspend(hq_server.service, "test", "xingchen", "audit pending")
    r = post_orders(hq_server, token, "k2", [order("o-2")])
    assert r.status_code == 403 and r.json() == {"error": "licence_suspended", "detail": "licence suspended: audit pending"}
    reply = beat(hq_server, token).json()
    assert reply["licence"] == {"status": "suspended", "reason": "audit pending"}
    licences.resume(hq_server.service, "test", "xingchen")
    assert post_orders(hq_server, token, "k2", [order("o-2")]).status_code == 200


def test_applied_seq_marks_commands_done_and_only_those(hq_server):
    from hq import sites

    token = hq_server.issue_licence("xingchen")
    for _ in range(3):
        sites.sync_now(hq_server.service, "test", "xingchen")
    assert [s for s, _ in command_types(hq_server, beat(hq_server, token).json())] == [1, 2, 3]
    assert [s for s, _ in command_types(hq_server, beat(hq_server, token, applied_seq=2).json())] == [3]
    with hq_server.service.session() as s:
        acked = dict(s.execute(select(Command.seq, Command.acked_at).where(Command.site_id == "xingchen")).all())
        site = s.get(Site, "xingchen")
        assert (site.applied_seq, site.version, site.counters) == (2, "0.2.0", {"orders_total": 1})
    assert acked[1] is not None and acked[2] is not None and acked[3] is None
    # a site cannot acknowledge what was never sent, nor go back
    assert command_types(hq_server, beat(hq_server, token, applied_seq=99).json()) == []
    assert command_types(hq_server, beat(hq_server, token, applied_seq=1).json()) == []
    with hq_server.service.session() as s:
        assert s.get(Site, "xingchen").applied_seq == 3
        assert all(s.scalars(select(Command.acked_at).where(Command.site_id == "xingchen")))


def test_heartbeat_refuses_licences_hq_does_not_know_for_that_site(hq_server):
    hq_server.issue_licence("xingchen")
    other = hq_server.issue_licence("yueliang")
    other_jti = verify_licence(other, hq_server.service.pinned()).claims.jti
    keys = hq_server.service.keys
    stray = issue_licence(keys, site="xingchen", tier="basic", categories=["game"], days=30, hq_url=hq_server.url)
    borrowed = issue_licence(keys, site="xingchen", tier="basic", categories=["game"], days=30, hq_url=hq_server.url,
                             jti=other_jti)  # a real licence id, but another site's
    for token in (stray, borrowed):
        r = beat(hq_server, token)
        assert r.status_code == 401 and r.json() == {"error": "unknown_licence",
                                                     "detail": "this licence is not known to HQ"}
    assert beat(hq_server, "garbage").json()["error"] == "invalid_licence"
    assert http.post(f"{hq_server.url}/v1/heartbeat", json=BEAT).json()["error"] == "unauthorized"
    with hq_server.service.session() as s:
        assert s.get(Site, "xingchen").last_heartbeat_at is None


def test_bad_heartbeat_bodies_get_one_line_and_change_nothing(hq_server):
    token = hq_server.issue_licence("xingchen")
    h = {**auth(token), "content-type": "application/json"}
    for body in (b"{not json", b"", b"[1]", json.dumps({**BEAT, "applied_seq": "x"}).encode(),
                 json.dumps({**BEAT, "version": ""}).encode(), json.dumps({"version": "1"}).encode(),
                 json.dumps({**BEAT, "health": [1]}).encode(), json.dumps({**BEAT, "extra": 1}).encode()):
        r = http.post(f"{hq_server.url}/v1/heartbeat", headers=h, content=body)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", body
        assert "\n" not in r.json()["detail"]
    r = beat(hq_server, token, health={"log": "x" * 17_000})
    assert r.status_code == 413 and r.json() == {"error": "too_large", "detail": "health is larger than 16384 bytes"}
    r = http.post(f"{hq_server.url}/v1/heartbeat", headers=h, content=b" " * 70_000 + json.dumps(BEAT).encode())
    assert r.status_code == 413
    with hq_server.service.session() as s:
        assert s.get(Site, "xingchen").last_heartbeat_at is None
    # numbers JSON allows but 64 bits do not are kept as sent
    big = 2**70
    assert beat(hq_server, token, counters={"bytes_total": big}).status_code == 200
    with hq_server.service.session() as s:
        assert s.get(Site, "xingchen").counters == {"bytes_total": big}


def test_openapi_documents_the_heartbeat_body_and_answer(hq_server):
    op = http.get(f"{hq_server.url}/openapi.json").json()["paths"]["/v1/heartbeat"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["version", "applied_seq"] and body["additionalProperties"] is False
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/HeartbeatOut"}


@pytest.mark.postgres
def test_batched_beats_from_two_workers_each_get_their_answer(tmp_path, hq_pg_server, hq_pg_template):
    """Two pools (as two uvicorn workers) beat 40 sites in opposite orders at once; batches share sites.

    (Whether two batches could lock shared sites in opposite orders depends on the plan
    PostgreSQL picks, which a test cannot force; the statement takes the locks in id order.)
    """
    from functools import partial

    from hq import heartbeat_pg, licences
    from hq.clock import utcnow
    from hq.heartbeat_batch import BeatBatcher
    from hq.service import HQ
    from hq.settings import HQSettings
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url:
        service = HQ.open(HQSettings(dir=tmp_path / "hq", database_url=url, registry_url=None))
        try:
            names = [f"site-{i:02d}" for i in range(40)]
            jtis = {n: verify_licence(str(licences.issue(service, "test", n, "basic", ["game"], 30)["token"]),
                                      service.pinned()).claims.jti for n in names}
            licences.suspend(service, "test", "site-07", "audit")

            async def run() -> tuple[list[int], list[BeatBatcher]]:
                pools = [await heartbeat_pg.open_pool(url, service.settings.db_connect_seconds),
                         await heartbeat_pg.open_pool(url, service.settings.db_connect_seconds)]
                batchers = [BeatBatcher(partial(heartbeat_pg.record_many, p)) for p in pools]
                try:
                    def one(batcher: BeatBatcher, name: str, seq: int):  # type: ignore[no-untyped-def]
                        return batcher.record(heartbeat_pg.BeatIn(name, jtis[name], f"1.{seq}", "{}", "{}", seq))

                    calls = [one(batchers[0], n, r) for r in range(5) for n in names]
                    calls += [one(batchers[1], n, r) for r in range(5) for n in reversed(names)]
                    calls.append(one(batchers[1], "site-03", 0))  # (a licence that is not this site's below)
                    calls.append(batchers[0].record(heartbeat_pg.BeatIn("site-04", jtis["site-05"], "x", "{}", "{}", 0)))
                    done = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
                    return [len(done), sum(d is None for d in done),
                            sum(d is not None and d.status == "suspended" for d in done)], batchers
                finally:
                    for p in pools:
                        await p.close()

            (total, unknown, suspended), batchers = asyncio.run(run())
            assert (total, unknown, suspended) == (402, 1, 10)
            assert sum(b.beats for b in batchers) == 402 and sum(b.batches for b in batchers) < 402 / 2
            with service.session() as s:
                seen = dict(s.execute(select(Site.id, Site.version).where(Site.id.in_(names))).all())
            assert set(seen) == set(names) and all(v is not None for v in seen.values())
        finally:
            service.close()


@pytest.mark.postgres
def test_heartbeat_survives_the_database_dropping_its_connections(tmp_path, hq_pg_server, hq_pg_template):
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import psycopg

    from hq.testing import running_hq
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url, running_hq(tmp_path, database_url=url) as hq:
        tokens = [hq.issue_licence(f"site-{i}") for i in range(8)]

        def all_beat() -> list[int]:  # at once, so the heartbeat pool holds several connections
            with ThreadPoolExecutor(8) as pool:
                return list(pool.map(lambda t: httpx.post(f"{hq.url}/v1/heartbeat", headers=auth(t), json=BEAT,
                                                          timeout=30).status_code, tokens * 3))

        assert set(all_beat()) == {200}
        db = url.rsplit("/", 1)[1]
        with psycopg.connect(pg.plain(hq_pg_server), autocommit=True) as conn:
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = %s AND pid <> pg_backend_pid()", (db,)).fetchone()[0]
        assert killed >= 2
        assert set(all_beat()) == {200}
        assert beat(hq, tokens[0]).json()["licence"]["status"] == "active"
