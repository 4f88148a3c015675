"""The push channel at HQ (`GET /v1/commands/wait`): a long-poll answered the moment a command is queued.

Each test holds the poll for far longer than it should take (30 s) and asserts it
came back before that, with the command: what woke it was the queueing, not the
hold running out. SQLite and PostgreSQL both; on PostgreSQL the wake from another
process is NOTIFY, on SQLite the sequence poller.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Iterator

import httpx
import pytest

from hq import licences
from hq.push import PushHub
from hq.service import HQ
from hq.settings import HQSettings
from hq.testing import RunningHQ
from kitcore.licence.commands import verify_command
from tests.agent.helpers import wait_until
from tests.hq.helpers import auth

HOLD = 30  # seconds the poll may be held: every wake below must come well before


class Poll(threading.Thread):
    """One long-poll in the background: its answer and how long it took."""

    def __init__(self, hq: RunningHQ, token: str, after: int = 0, wait: int = HOLD) -> None:
        super().__init__(daemon=True)
        self.args = (hq.url, token, after, wait)
        self.response: httpx.Response | None = None
        self.seconds = -1.0

    def run(self) -> None:
        url, token, after, wait = self.args
        started = time.monotonic()
        self.response = httpx.get(f"{url}/v1/commands/wait", params={"after": after, "wait": wait},
                                  headers=auth(token), timeout=wait + 10)
        self.seconds = time.monotonic() - started

    def answer(self) -> dict[str, Any]:
        self.join(HOLD + 15)
        assert self.response is not None and self.response.status_code == 200, self.response
        return self.response.json()  # type: ignore[no-any-return]


def parked(hq: RunningHQ, count: int = 1) -> None:
    """Wait until `count` long-polls are parked in the hub (so the wake cannot come before the wait)."""
    wait_until(lambda: hq.app.state.push.waiting_count >= count, 10, 0.01, what="a parked long-poll")


@pytest.fixture
def other_process(hq_server: RunningHQ) -> Iterator[HQ]:
    """HQ opened a second time on the same directory and database, as `kitctl hq` or another instance does:
    its commands reach the server only through the database (NOTIFY, or the SQLite poller)."""
    other = HQ.open(HQSettings(dir=hq_server.hq_dir, database_url=hq_server.service.settings.database_url),
                    migrate=False)
    yield other
    other.close()


def test_a_parked_poll_answers_the_moment_a_command_is_queued(hq_server: RunningHQ) -> None:
    token = hq_server.issue_licence("push-a")
    poll = Poll(hq_server, token)
    poll.start()
    parked(hq_server)
    licences.suspend(hq_server.service, "op", "push-a", "unpaid invoice")
    body = poll.answer()
    assert poll.seconds < HOLD / 2, poll.seconds
    [command] = body["commands"]
    envelope = verify_command(command, hq_server.service.pinned())  # the heartbeat's signed envelope
    assert (envelope.type, envelope.seq, envelope.site, envelope.payload["reason"]) == \
        ("suspend", 1, "push-a", "unpaid invoice")
    assert body["licence"]["status"] == "suspended"


def test_a_command_queued_by_another_hq_process_wakes_the_poll(hq_server: RunningHQ, other_process: HQ) -> None:
    token = hq_server.issue_licence("push-b")
    poll = Poll(hq_server, token)
    poll.start()
    parked(hq_server)
    licences.revoke(other_process, "op", "push-b", "terms broken")
    body = poll.answer()
    assert poll.seconds < HOLD / 2, poll.seconds
    assert [verify_command(c, hq_server.service.pinned()).type for c in body["commands"]] == ["revoke"]
    assert body["licence"]["status"] == "revoked"  # a revoked licence still hears HQ over the channel


def test_pending_commands_are_answered_at_once_and_acknowledged_ones_never_again(hq_server: RunningHQ) -> None:
    token = hq_server.issue_licence("push-c")
    licences.suspend(hq_server.service, "op", "push-c", "check")
    started = time.monotonic()
    r = httpx.get(f"{hq_server.url}/v1/commands/wait", params={"after": 0, "wait": HOLD}, headers=auth(token),
                  timeout=HOLD + 10)
    assert r.status_code == 200 and len(r.json()["commands"]) == 1 and time.monotonic() - started < HOLD / 2
    beat = httpx.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token), timeout=10,
                      json={"version": "1", "applied_seq": 1, "health": {}, "counters": {}})
    assert beat.status_code == 200
    # acknowledged: an agent that lost its state (after=0) is not handed the command again; the hold runs out
    r = httpx.get(f"{hq_server.url}/v1/commands/wait", params={"after": 0, "wait": 1}, headers=auth(token),
                  timeout=10)
    assert r.status_code == 200 and r.json()["commands"] == []


def test_refusals_are_one_line_and_a_bad_wait_is_422(hq_server: RunningHQ) -> None:
    token = hq_server.issue_licence("push-d")
    url = f"{hq_server.url}/v1/commands/wait"
    assert httpx.get(url, params={"wait": 1}, timeout=10).status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    r = httpx.get(url, params={"wait": 1}, headers=auth(forged), timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "invalid_licence"
    for params in ({"wait": 56}, {"wait": -1}, {"after": -1}, {"after": "x"}):
        r = httpx.get(url, params=params, headers=auth(token), timeout=10)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", (params, r.text)


def test_an_agent_hanging_up_ends_its_hold_at_once(hq_server: RunningHQ) -> None:
    """The poll of an agent that went away leaves the hub when it hangs up, not when its hold runs out."""
    import socket
    from urllib.parse import urlsplit

    token = hq_server.issue_licence("push-gone")
    url = urlsplit(hq_server.url)
    hub = hq_server.app.state.push
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(f"GET /v1/commands/wait?wait={HOLD} HTTP/1.1\r\nHost: hq\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        wait_until(lambda: hub.waiting_count == 1, 10, 0.01, what="the poll parked")
    hung_up = time.monotonic()
    wait_until(lambda: hub.waiting_count == 0, 5, 0.01, what="the hold ended with the connection")
    assert time.monotonic() - hung_up < HOLD / 6


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_listener_reconnects_and_misses_nothing_queued_while_it_was_away(hq_server: RunningHQ,
                                                                            other_process: HQ) -> None:
    """Its PostgreSQL session is killed; a command queued before it listens again still wakes the poll."""
    import psycopg

    from hq.push_pg import APPLICATION_NAME
    from tests.hq.pg import plain

    token = hq_server.issue_licence("push-e")
    poll = Poll(hq_server, token)
    poll.start()
    parked(hq_server)
    with psycopg.connect(plain(hq_server.service.settings.database_url or ""), autocommit=True) as conn:
        killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = %s", (APPLICATION_NAME,)).fetchone()
        assert killed is not None and killed[0] == 1
        licences.suspend(other_process, "op", "push-e", "queued while nobody listened")
    body = poll.answer()
    assert poll.seconds < HOLD / 2, poll.seconds
    assert [verify_command(c, hq_server.service.pinned()).type for c in body["commands"]] == ["suspend"]


def test_closing_the_hub_answers_every_parked_poll_at_once() -> None:
    """HQ stopping does not wait out its agents' holds (uvicorn waits for requests in flight)."""

    async def scenario() -> list[bool]:
        hub = PushHub()
        hub.attach(asyncio.get_running_loop())

        async def park() -> bool:
            with hub.waiting("s", 0) as waiter:
                return await waiter.wait(HOLD)

        waits = [asyncio.ensure_future(park()) for _ in range(3)]
        await asyncio.sleep(0.05)
        hub.close_threadsafe()
        return list(await asyncio.wait_for(asyncio.gather(*waits), timeout=5))

    assert asyncio.run(scenario()) == [True, True, True]


@pytest.mark.postgres
def test_every_worker_of_a_multi_worker_hq_listens_and_wakes_its_polls(tmp_path, hq_pg_server, hq_pg_template) -> None:  # type: ignore[no-untyped-def]
    """`python -m hq` with two workers on PostgreSQL: both hold a LISTEN session, and polls parked on either
    are answered when a command is queued from a third process."""
    import os
    import subprocess
    import sys

    import psycopg

    from hq.push_pg import APPLICATION_NAME
    from hq.testing import free_port
    from tests.agent.helpers import ROOT
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url:
        hq_dir, port = tmp_path / "hq", free_port()
        queueing = HQ.open(HQSettings(dir=hq_dir, database_url=url, registry_url=None), migrate=False)
        try:
            handle = RunningHQ(url=f"http://127.0.0.1:{port}", hq_dir=hq_dir, keys_path=hq_dir / "unused",
                               operator_token="", service=queueing)
            tokens = {s: handle.issue_licence(s) for s in ("multi-1", "multi-2")}
            env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_HQ_DIR": str(hq_dir), "KIT_HQ_DATABASE_URL": url,
                   "KIT_HQ_BIND": f"127.0.0.1:{port}", "KIT_HQ_WORKERS": "2", "KIT_HQ_REGISTRY_URL": ""}
            proc = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                with psycopg.connect(pg.plain(url), autocommit=True) as conn:
                    def listeners() -> int:
                        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                           "AND datname = current_database()", (APPLICATION_NAME,)).fetchone()
                        return int(row[0]) if row else 0

                    wait_until(lambda: listeners() == 2, 60, 0.2, what="a LISTEN session per worker")
                polls = [Poll(handle, tokens[f"multi-{1 + i % 2}"]) for i in range(8)]
                for poll in polls:
                    poll.start()
                time.sleep(1.0)  # parked (a poll not parked yet finds the command by reading: same answer)
                licences.suspend(queueing, "op", "multi-1", "fleet-wide check")
                licences.suspend(queueing, "op", "multi-2", "fleet-wide check")
                for poll in polls:
                    body = poll.answer()
                    assert poll.seconds < HOLD / 2 and [verify_command(c, queueing.pinned()).type
                                                        for c in body["commands"]] == ["suspend"]
            finally:
                proc.terminate()
                proc.wait(20)
        finally:
            queueing.close()


def test_sigterm_answers_parked_polls_at_once_instead_of_waiting_out_their_hold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`python -m hq` stopping: its parked long-polls are answered (no commands) and it exits promptly,
    rather than uvicorn waiting for them until its graceful-shutdown time runs out."""
    import os
    import signal
    import subprocess
    import sys

    from hq.testing import free_port
    from tests.agent.helpers import ROOT

    hq_dir, port = tmp_path / "hq", free_port()
    service = HQ.open(HQSettings(dir=hq_dir, registry_url=None))
    try:
        handle = RunningHQ(url=f"http://127.0.0.1:{port}", hq_dir=hq_dir, keys_path=hq_dir / "unused",
                           operator_token="", service=service)
        token = handle.issue_licence("stopping")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_HQ_DIR": str(hq_dir), "KIT_HQ_BIND": f"127.0.0.1:{port}",
               "KIT_HQ_REGISTRY_URL": ""}
        env.pop("KIT_HQ_DATABASE_URL", None)
        proc = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: _healthy(handle.url), 30, 0.2, what="HQ process")
            polls = [Poll(handle, token) for _ in range(3)]
            for poll in polls:
                poll.start()
            time.sleep(1.0)  # parked
            stop_asked = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(HOLD) == 0
            stopped_in = time.monotonic() - stop_asked
            for poll in polls:
                assert poll.answer()["commands"] == [] and poll.seconds < HOLD / 2
            assert stopped_in < 5, stopped_in  # uvicorn's graceful wait is 7 s: it did not run out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    finally:
        service.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_waiter_times_out_false_and_is_woken_true_without_a_task_of_its_own() -> None:
    async def scenario() -> tuple[bool, bool, bool, bool, list[int]]:
        hub = PushHub()
        loop = asyncio.get_running_loop()
        hub.attach(loop)
        tasks: list[int] = []
        with hub.waiting("s", 0) as waiter:
            loop.call_later(0.01, lambda: tasks.append(len(asyncio.all_tasks())))  # counted while it waits
            timed_out = await waiter.wait(0.05)
            left_set = waiter.event.is_set()  # a time-out leaves nothing behind for the next wait
            loop.call_later(0.05, hub.wake, "s")
            woken = await waiter.wait(HOLD)
            again = await waiter.wait(HOLD)  # still set: the caller clears it before it reads
            return timed_out, left_set, woken, again, tasks

    assert asyncio.run(scenario()) == (False, False, True, True, [1])  # the scenario's own task, no other
