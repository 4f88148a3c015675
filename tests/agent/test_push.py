"""The push channel, agent and real HQ together: commands land before the heartbeat would have brought them.

HQ answers heartbeats with a 60 s interval here, so a command applied while the
agent sent no heartbeat since it was queued came over the push channel. The
tests assert exactly that (heartbeats counted around the command), not a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from agent.state import read_state
from hq import licences
from hq.testing import RunningHQ, free_port, running_hq
from tests.agent.faultproxy import FaultProxy
from tests.agent.helpers import ROOT, make_site_dir, sqlite_url, wait_until

INTERVAL = 60  # HQ's heartbeat interval in these tests


class Beats:
    """Records the agent's heartbeats (the fallback path) by wrapping `Heartbeat.beat`: for each, the site's
    licence status when it began (a beat that began with the command already applied only acknowledged it)."""

    def __init__(self, agent: Any) -> None:
        self.started_with: list[str] = []
        self.finished = 0
        original = agent.heartbeat.beat

        def counted() -> Any:
            self.started_with.append(status(agent))
            try:
                return original()
            finally:
                self.finished += 1

        agent.heartbeat.beat = counted


@contextmanager
def running_agent(settings: Any) -> Iterator[Any]:
    from agent.runner import Agent

    agent = Agent(settings)
    agent.start()
    beats = Beats(agent)
    thread = threading.Thread(target=agent.run, name="agent", daemon=True)
    thread.start()
    agent.beats = beats
    try:
        yield agent
    finally:
        agent.request_stop()
        thread.join(20)
        assert not thread.is_alive(), "agent did not stop"


def status(agent: Any) -> str:
    return read_state(agent.engine).licence_status  # type: ignore[no-any-return]


def _applied(agent: Any) -> float:
    """Commands of every type the agent counted as applied."""
    return sum(sample.value for metric in agent.metrics.command_outcomes.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["outcome"] == "applied")


def applied_by_push(agent: Any, hq_service: Any, queue: Any, expect: str, timeout: float = 20) -> None:
    """Queue a command with `queue()`, wait for `expect` at the site; no heartbeat may have carried it."""
    # no heartbeat in flight (the start-up one, the ack of the last command: HQ has the ack), and a long-poll
    # open: whether the command is committed before HQ parks it or after, the long-poll answers with it
    def settled() -> bool:
        beats = agent.beats
        return (beats.finished >= 1 and beats.finished == len(beats.started_with) and agent.push.in_flight
                and _site_applied_seq(hq_service, agent.site_id) == read_state(agent.engine).applied_seq)

    wait_until(settled, 15, 0.02, what="the push channel, no heartbeat in flight")
    before, counted = len(agent.beats.started_with), _applied(agent)
    queue()
    wait_until(lambda: status(agent) == expect, timeout, 0.02, what=f"licence {expect}")
    # the licence state is stored, then the outcome counted: a caller reading the counts reads them after
    wait_until(lambda: _applied(agent) > counted, 10, 0.02, what=f"the command that made it {expect} counted")
    carriers = [s for s in agent.beats.started_with[before:] if s != expect]
    assert not carriers, "a heartbeat carried the command, not the push channel"


@pytest.fixture(scope="module")
def slow_beat_hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHQ]:
    with running_hq(tmp_path_factory.mktemp("hq"), heartbeat_interval_seconds=INTERVAL,
                    site_rate_per_second=10_000, site_rate_burst=10_000) as server:
        yield server


def test_suspend_resume_revoke_land_by_push_before_any_heartbeat(slow_beat_hq: RunningHQ, tmp_path: Path) -> None:
    site = make_site_dir(tmp_path, slow_beat_hq, sqlite_url(tmp_path), site_id="push-1")
    service = slow_beat_hq.service
    with running_agent(site.settings(metrics_port=0)) as agent:
        applied_by_push(agent, service, lambda: licences.suspend(service, "op", "push-1", "unpaid"), "suspended")
        assert read_state(agent.engine).status_reason == "unpaid"
        # the agent acknowledges at once (a heartbeat right after applying): HQ stops handing it out
        wait_until(lambda: _hq_applied_seq(slow_beat_hq, "push-1") == 1, 10, what="HQ saw the ack")
        applied_by_push(agent, service, lambda: licences.resume(service, "op", "push-1"), "active")
        applied_by_push(agent, service, lambda: licences.revoke(service, "op", "push-1", "terms"), "revoked")
        m = agent.metrics
        assert [m.command_outcomes.labels(t, "applied")._value.get() for t in ("suspend", "resume", "revoke")] \
            == [1, 1, 1]
        assert sum(m.commands_rejected.labels(r)._value.get()
                   for r in ("signature", "wrong_site", "expired", "replayed", "malformed")) == 0


def test_when_the_channel_is_cut_heartbeats_carry_commands_and_the_channel_comes_back(
        slow_beat_hq: RunningHQ, tmp_path: Path) -> None:
    site = make_site_dir(tmp_path, slow_beat_hq, sqlite_url(tmp_path), site_id="push-2")
    service = slow_beat_hq.service
    with FaultProxy(slow_beat_hq.url) as proxy:
        site.hq_url = proxy.url
        proxy.set("down", only="/v1/commands/wait")
        with running_agent(site.settings(metrics_port=0, push_retry_cap=1)) as agent:
            wait_until(lambda: proxy.faults >= 2, 15, what="the channel retried")
            assert agent.metrics.push_connected._value.get() == 0
            licences.suspend(service, "op", "push-2", "while the channel is down")
            agent.beat_wakeup.set()  # the next heartbeat, without waiting out its 60 s
            wait_until(lambda: status(agent) == "suspended", 20, what="suspension by heartbeat")
            assert agent.beats.started_with
            proxy.set("pass")
            applied_by_push(agent, service, lambda: licences.resume(service, "op", "push-2"), "active")
            assert agent.metrics.command_outcomes.labels("suspend", "applied")._value.get() == 1


def test_hq_killed_and_restarted_the_agent_reconnects_nothing_lost_or_applied_twice(tmp_path: Path) -> None:
    """HQ is this test's own process: killed (SIGKILL), a command queued while it is down, started again."""
    with own_hq(tmp_path, "push-3") as (service, site, port, hq_dir):
        with _hq_process(hq_dir, port, tmp_path / "hq-1.log") as first:
            with running_agent(site.settings(metrics_port=0, push_retry_cap=2)) as agent:
                applied_by_push(agent, service, lambda: licences.suspend(service, "op", "push-3", "one"),
                                "suspended")
                first.send_signal(signal.SIGKILL)
                first.wait(10)
                wait_until(lambda: agent.metrics.push_connected._value.get() == 0, 40, what="channel noticed down")
                licences.resume(service, "op", "push-3")  # `kitctl hq` while the server is down
                with _hq_process(hq_dir, port, tmp_path / "hq-2.log"):
                    wait_until(lambda: status(agent) == "active", 30, what="the resume queued while HQ was down")
                    applied_by_push(agent, service, lambda: licences.suspend(service, "op", "push-3", "two"),
                                    "suspended")
                    m = agent.metrics
                    assert m.command_outcomes.labels("suspend", "applied")._value.get() == 2
                    assert m.command_outcomes.labels("resume", "applied")._value.get() == 1
                    assert read_state(agent.engine).applied_seq == 3


def test_hq_stopping_is_noticed_by_the_push_channel_before_any_other_request(tmp_path: Path) -> None:
    """HQ stopped (SIGTERM) answers every long-poll and refuses the next connection: the agent's link turns
    unreachable within about a second (PUSH_MIN_GAP), with no order to forward and no heartbeat due."""
    with own_hq(tmp_path, "push-4") as (_service, site, port, hq_dir):
        with _hq_process(hq_dir, port, tmp_path / "hq.log") as hq_proc:
            with running_agent(site.settings(metrics_port=0, push_retry_cap=2, settlement_interval=600)) as agent:
                wait_until(lambda: agent.push.in_flight and agent.beats.finished >= 1, 15, 0.02,
                           what="a long-poll open")
                time.sleep(2)  # the start-up sync and settlement are done; their next runs are 60 s away
                beats = len(agent.beats.started_with)
                hq_proc.terminate()
                stopping = time.monotonic()
                wait_until(lambda: agent.link.unreachable, 10, 0.02, what="the link unreachable")
                noticed = time.monotonic() - stopping
                hq_proc.wait(15)
                print(f"\nHQ stop noticed after {noticed:.2f} s")
                assert noticed < 3.0, noticed  # the next heartbeat is 60 s away
                assert len(agent.beats.started_with) == beats
                assert agent.metrics.hq_link.labels("unreachable")._value.get() == 1


@contextmanager
def own_hq(tmp_path: Path, site_id: str) -> Iterator[tuple[Any, Any, int, Path]]:
    """HQ's state for a server this test runs as its own process (`_hq_process`), and a site of it:
    (the service, the site's directory, the port, HQ's directory)."""
    from hq.service import HQ
    from hq.settings import HQSettings

    port = free_port()
    hq_dir = tmp_path / "hq"
    service = HQ.open(HQSettings(dir=hq_dir, registry_url=None, public_url=f"http://127.0.0.1:{port}"))
    try:
        handle = RunningHQ(url=f"http://127.0.0.1:{port}", hq_dir=hq_dir, keys_path=hq_dir / "unused",
                           operator_token="", service=service)
        yield service, make_site_dir(tmp_path, handle, sqlite_url(tmp_path), site_id=site_id), port, hq_dir
    finally:
        service.close()


@contextmanager
def _hq_process(hq_dir: Path, port: int, log: Path) -> Iterator["subprocess.Popen[bytes]"]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_HQ_DIR": str(hq_dir), "KIT_HQ_BIND": f"127.0.0.1:{port}",
           "KIT_HQ_HEARTBEAT_INTERVAL_SECONDS": str(INTERVAL), "KIT_HQ_REGISTRY_URL": "",
           "KIT_HQ_SITE_RATE_PER_SECOND": "10000", "KIT_HQ_SITE_RATE_BURST": "10000"}
    env.pop("KIT_HQ_DATABASE_URL", None)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz", proc, log), 30, what="HQ process")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _answers(url: str, proc: "subprocess.Popen[bytes]", log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"HQ exited with {proc.returncode}: {log.read_text()[-800:]}")
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _hq_applied_seq(hq: RunningHQ, site_id: str) -> int:
    return _site_applied_seq(hq.service, site_id)


def _site_applied_seq(service: Any, site_id: str) -> int:
    from hq.models import Site

    with service.session() as s:
        return int(s.get(Site, site_id).applied_seq)  # type: ignore[union-attr]


class FakeChannelHQ:
    """The channel's far end, faked: it answers each long-poll with the tokens given (a hostile or broken peer)."""

    def __init__(self, *batches: list[str]) -> None:
        self.batches = list(batches)
        self.asked: list[int] = []

    def wait_commands(self, after: int, wait: int) -> Any:
        from agent.hq_client import HeartbeatReply, LicenceStatus

        self.asked.append(after)
        return HeartbeatReply(interval_seconds=60, licence=LicenceStatus("active"), commands=self.batches.pop(0))


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_forged_and_replayed_commands_over_the_channel_are_refused(hq, started, site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The channel's commands go through the heartbeat's verification: signature, site, expiry, sequence."""
    from agent.push import PushChannel
    from kitcore.licence.keys import HQKeyStore
    from tests.agent.test_commands import _command

    forger = HQKeyStore(tmp_path / "forger")
    forger.init()
    real = HQKeyStore(hq.hq_dir)
    genuine = _command(real, site.site_id, 1, "suspend", reason="genuine")
    replay_fresh_id = _command(real, site.site_id, 1, "resume")  # seq 1 again, a new id and a fresh signature
    peer = FakeChannelHQ([_command(forger, site.site_id, 1, "revoke", reason="forged")], [genuine], [genuine],
                         [replay_fresh_id])
    acks: list[int] = []
    channel = PushChannel(peer, started.commands, started.metrics, 25, on_applied=lambda: acks.append(1))  # type: ignore[arg-type]
    m = started.metrics

    forged = channel.once()
    assert (forged.applied, forged.stalled) == (0, True)  # stalled: the loop backs off instead of spinning
    assert status(started) == "active" and m.commands_rejected.labels("signature")._value.get() == 1
    assert channel.once().applied == 1 and status(started) == "suspended" and acks == [1]
    again = channel.once()  # HQ handed out the same command before it saw the ack: not applied twice
    assert again.applied == 0 and m.command_outcomes.labels("suspend", "applied")._value.get() == 1
    assert m.commands_rejected.labels("replayed")._value.get() == 0
    assert channel.once().applied == 0 and status(started) == "suspended"
    assert m.commands_rejected.labels("replayed")._value.get() == 1
    assert peer.asked == [0, 0, 1, 1]  # each long-poll says what the site has applied


def test_a_review_decision_reaches_the_order_by_push_not_at_the_next_review_poll(slow_beat_hq: RunningHQ,
                                                                                tmp_path: Path) -> None:
    from sqlalchemy import select

    from hq import reviews
    from sitedb.tables import orders
    from tests.agent.helpers import OPEN_RULES, write_orders

    hq = slow_beat_hq
    hq.set_rules({**OPEN_RULES, "limits": {**OPEN_RULES["limits"], "review_amount_cents": 50_000}})
    hq.seed_item("topup-review", category="game", price_cents=60_000, stock_kind="direct_topup")
    site = make_site_dir(tmp_path, hq, sqlite_url(tmp_path), site_id="push-review")
    # the agent would ask about the order again only a minute on (and heartbeats come every minute)
    with running_agent(site.settings(metrics_port=0, review_poll=60)) as agent:
        [oid] = write_orders(agent.engine, 1, "topup-review", unit_price_cents=60_000)

        def order() -> Any:
            with agent.engine.connect() as conn:
                return conn.execute(select(orders.c.status, orders.c.hq_order_id).where(orders.c.id == oid)).one()

        wait_until(lambda: order().status == "review", 20, 0.05, what="the order under review")
        wait_until(lambda: agent.push.in_flight, 15, 0.02, what="the push channel open")
        reviews.resolve(hq.service, "op", order().hq_order_id, "approve")
        wait_until(lambda: order().status == "delivered", 10, 0.02, what="the decision at the site")
        assert agent.metrics.command_outcomes.labels("review_decided", "applied")._value.get() == 1
