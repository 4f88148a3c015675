"""Wires the agent together and runs its loops until SIGTERM.

Each loop is a thread doing one bounded unit of work at a time (a sync
page, an order batch, a heartbeat) and waiting on the shared stop event in
between, so SIGTERM lets the unit in flight finish, then the process exits.
HQ or database trouble never kills a loop: it is logged once, counted, and
retried with exponential backoff and jitter.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy.exc import DBAPIError, OperationalError

from agent import db_errors
from agent.commands import CommandProcessor, Effects
from agent.health import HealthServer
from agent.heartbeat import Heartbeat
from agent.hq_client import HQClient, HQError
from agent.hqlink import HQLink
from agent.licence import choose_licence, evaluate, install_start_licence
from agent.logs import LogOnce
from agent.memory import release_free_memory
from agent.metrics import AgentMetrics
from agent.outbox import Forwarder, backoff_seconds
from agent.plugin_events import PluginEvents
from agent.push import PushChannel
from agent.settings import AgentSettings
from agent.settlement import SettlementSync
from agent.state import ensure_state, read_state
from agent.stats import Observer
from agent.sync import CatalogSync
from agent.transport import HttpClient
from kitcore.errors import InvalidInput

log = logging.getLogger("agent")
DB_ERRORS = (OperationalError, DBAPIError)


PUSH_MIN_GAP = 1.0  # seconds between the starts of two long-polls, at least
BIG_SYNC_PAGES = 5  # after a sync of this many pages, freed memory is handed back to the OS


def jittered(seconds: float) -> float:
    """±10 % so a fleet of agents does not beat in step."""
    return seconds * random.uniform(0.9, 1.1)



@dataclass(frozen=True)
class LocalWork:
    """A unit's result that asked HQ nothing (held-back orders made due): it proves no HQ problem over."""

    rows: int
    contacted_hq: bool = False


class Agent:
    """One running agent: start() prepares everything, run() blocks until stopped."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.sync_wakeup = threading.Event()
        self.forward_wakeup = threading.Event()  # stop, or HQ may take held orders again (resume)
        self.review_due = threading.Event()  # HQ decided an order under review: poll now, not at the next round
        self.beat_wakeup = threading.Event()  # stop, HQ answers again after an outage, or a pushed command to ack
        self.push_wakeup = threading.Event()  # stop, or HQ answers again: reopen the push channel now
        self.hq_back = threading.Event()  # HQ answered after an outage: orders held back are due at once
        self.metrics = AgentMetrics()
        self.once = LogOnce(log)
        self.ready = False
        self.threads: list[threading.Thread] = []
        self.heartbeat_interval = settings.heartbeat_interval
        self.sync_interval = settings.sync_interval
        self.settlement_interval = settings.settlement_interval

    # -- start -------------------------------------------------------------------
    def start(self) -> None:
        """Migrate, verify the licence, open HQ's client; raises InvalidInput on bad config."""
        from kitcore.licence.keys import load_jwks
        from sitedb.engine import make_engine
        from sitedb.sealing import load_site_key

        s = self.settings
        url = s.resolved_database_url()
        self.keys = load_jwks(s.hq_keys_file)
        try:
            self.site_key = load_site_key(s.site_key_file)
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"KIT_SITE_KEY_FILE: {exc}") from None
        file_token = _read_secret(s.licence_file, "KIT_LICENCE_FILE")
        evaluate(file_token, self.keys)  # a bad licence is refused before anything is touched
        s.probes()  # a bad KIT_STACK_PROBES too
        site_json = s.site_json()
        wait_for_database(url, s.db_wait, self.stop)
        run_migrations(url)
        self.engine = make_engine(url, connect_timeout=s.connect_timeout)
        stored = self._stored_token()
        held = choose_licence(file_token, stored, self.keys)
        self.site_id = held.site_id
        configured = site_json.get("site_id") or site_json.get("id")
        if configured and configured != self.site_id:
            raise InvalidInput(f"KIT_SITE_CONFIG names site {configured!r} but the licence is for {self.site_id!r}")
        state = ensure_state(self.engine, self.site_id)
        status = install_start_licence(self.engine, held, state.licence_status, state.status_reason)
        self.metrics.set_licence_state(status)
        self.plugins = PluginEvents(config_dir=s.plugins_dir(), enabled=s.plugin_choice(), engine=self.engine)
        self.plugins.reload(list(held.verified.claims.features))
        hq_url = s.hq_url or held.verified.claims.hq_url
        self.link = HQLink(self.metrics, probe_interval=s.hq_probe_interval)
        self.link.on_back(self._hq_back)
        self.clients = [HQClient(hq_url, held.token, self.metrics, timeout=s.http_timeout,
                                 connect_timeout=s.connect_timeout, link=self.link) for _ in range(4)]
        self.probe_client = HttpClient(hq_url, timeout=max(s.hq_probe_interval, 0.2) * 2,
                                       connect_timeout=max(s.hq_probe_interval, 0.2),
                                       headers={"User-Agent": "kitctl-agent"}, max_body=4096)
        sync_client, order_client, beat_client, settle_client = self.clients
        # the long-poll's own client: its requests last up to push_wait, plus the usual deadline for the answer.
        # It judges the HQ link only by connections it cannot open: a proxy that cuts held requests must not
        # make HQ look away to the other loops (the link's prober would flap), but HQ stopping answers every
        # long-poll and refuses the next one, which tells the agent at once rather than at its next order.
        self.push_client = HQClient(hq_url, held.token, self.metrics, timeout=s.push_wait + s.http_timeout,
                                    connect_timeout=s.connect_timeout, link=self.link, link_hears_only_unopened=True)
        self.sync = CatalogSync(self.engine, sync_client, self.metrics, emit=self.plugins.emit,
                                page_limit=s.sync_page_limit, stop=self.stop, wants=self.plugins.wants)
        self.forwarder = Forwarder(self.engine, order_client, self.metrics, self.site_id, self.site_key,
                                   batch=s.forward_batch, backoff_base=s.backoff_base, backoff_cap=s.backoff_cap,
                                   review_poll=s.review_poll, payment_poll=s.payment_poll,
                                   emit=self.plugins.emit,
                                   wants=self.plugins.wants)
        self.settlement = SettlementSync(self.engine, settle_client, self.metrics, backoff_base=s.backoff_base,
                                         backoff_cap=s.backoff_cap)
        self.commands = CommandProcessor(self.engine, self.keys, self.site_id, self.metrics,
                                         on_effects=self._apply_effects)
        self.observer = Observer(self.engine, self.metrics, self.keys, _data_path(url), s.docker_socket,
                                 s.backlog_alert, link=self.link, stack_probes=s.probes())
        self.heartbeat = Heartbeat(self.engine, beat_client, self.metrics, self.commands,
                                   health=lambda: dict(self.observer.summary), emit=self.plugins.emit)
        self.push = PushChannel(self.push_client, self.commands, self.metrics, s.push_wait,
                                on_applied=self.beat_wakeup.set)
        self.clients.append(self.push_client)  # a new licence authenticates it too; shutdown closes it
        self.commands.resume_unapplied()
        self.observer.observe()
        self.server = HealthServer(s.metrics_bind, s.metrics_port, self.metrics, self._ready, token=s.metrics_token())
        self.server.start()
        self.ready = True
        self.metrics.up.set(1)
        log.info("agent started", extra={"site": self.site_id, "hq": hq_url, "licence": status,
                                         "metrics_port": self.server.port})

    def _stored_token(self) -> str | None:
        """The licence HQ last sent (None on a fresh database: ensure_state has not run yet)."""
        from sqlalchemy import select

        from sitedb.tables import site_state

        with self.engine.connect() as conn:
            return conn.execute(select(site_state.c.licence_token).where(site_state.c.id == 1)).scalar()

    # -- run -----------------------------------------------------------------------
    def run(self) -> None:
        """Start the loops and block until stop() (SIGTERM); then let units in flight finish."""
        release_free_memory()  # what starting up freed (licence checks, schemas) is not kept resident
        for name, loop in (("sync", self._sync_loop), ("forward", self._forward_loop),
                           ("heartbeat", self._heartbeat_loop), ("settlement", self._settlement_loop),
                           ("stats", self._stats_loop),
                           *((("push", self._push_loop),) if self.settings.push else ()),
                           ("hq-probe", lambda: self.link.run_prober(self.probe_client, self.stop))):
            t = threading.Thread(target=self._guarded, args=(name, loop), name=name, daemon=True)
            t.start()
            self.threads.append(t)
        while not self.stop.wait(0.5):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        """Let units in flight finish within the stop budget; past it, abort HQ requests still open.

        An aborted batch is handed back, not lost: its orders are still `pending` in the
        database, and HQ answers the same batch again with the same decisions (Idempotency-Key).
        """
        log.info("stopping: finishing work in flight", extra={"budget_seconds": self.settings.stop_timeout})
        self.push_client.http.abort()  # a long-poll waiting for HQ is no work in flight
        deadline = time.monotonic() + self.settings.stop_timeout
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self.threads):
            log.warning("stop budget spent: aborting HQ requests in flight; their orders stay pending")
            for http in [*(c.http for c in self.clients), self.probe_client]:
                http.abort()
            for t in self.threads:
                t.join(timeout=2.0)
        self.server.stop()
        self.forwarder.close()
        for c in self.clients:
            c.close()
        self.probe_client.close()
        self.engine.dispose()
        log.info("agent stopped")

    def _running(self) -> bool:
        return not self.stop.is_set()

    def request_stop(self, *_args: object) -> None:
        self.stop.set()
        self.sync_wakeup.set()
        self.forward_wakeup.set()
        self.beat_wakeup.set()
        self.push_wakeup.set()

    def _hq_back(self) -> None:
        """HQ answers again after an outage: every loop goes back to work now, not after its back-off."""
        self.hq_back.set()
        self.sync_wakeup.set()
        self.forward_wakeup.set()
        self.beat_wakeup.set()
        self.push_wakeup.set()

    def _retry_wait(self, failures: int) -> float:
        """After a failed unit: exponential back-off when HQ refused; while HQ is merely away, until it is back."""
        if self.link.unreachable:
            return self.settings.backoff_cap  # the link's prober wakes the loop as soon as HQ answers
        return backoff_seconds(failures, self.settings.backoff_base, self.settings.backoff_cap)

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    # -- loops ---------------------------------------------------------------------
    def _guarded(self, name: str, loop: Callable[[], None]) -> None:
        """Run a loop forever; any escape is logged, counted and the loop restarts after a pause."""
        failures = 0
        while not self.stop.is_set():
            try:
                loop()
                return
            except Exception:
                failures += 1
                self.metrics.loop_errors.labels(name).inc()
                log.exception("loop failed; restarting it", extra={"loop": name})
                self.stop.wait(backoff_seconds(failures, 1.0, 60.0))

    def _sync_loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            ok = self._unit("sync", self.sync.run)
            failures = 0 if ok else failures + 1
            if getattr(ok, "pages", 0) >= BIG_SYNC_PAGES:
                release_free_memory()  # a big sync's freed pages go back to the OS, not idle RSS
            wait = jittered(max(self.sync_interval, self.settings.min_interval)) if ok else self._retry_wait(failures)
            self.sync_wakeup.wait(wait)
            self.sync_wakeup.clear()

    def _forward_loop(self) -> None:
        failures = 0
        last_review = 0.0
        while not self.stop.is_set():
            if self.hq_back.is_set():
                self.hq_back.clear()
                self._unit("orders", lambda: LocalWork(self.forwarder.due_after_outage()))
            outcome = self._unit("orders", lambda: self.forwarder.forward_burst(keep_going=self._running))
            if outcome is None:
                failures += 1
                self._forward_pause(self._retry_wait(failures))
                continue
            failures = 0
            if self.review_due.is_set() or time.monotonic() - last_review >= self.settings.forward_idle:
                self.review_due.clear()
                last_review = time.monotonic()
                self._unit("order_status", self.forwarder.poll_reviews_once)
                self._unit("restock", self._forward_restock)
            if not outcome.more:
                self._forward_pause(self.settings.forward_idle)

    def _forward_restock(self) -> int:
        """Buyers' back-in-stock requests to HQ (agent.restock), with the order client."""
        from agent import restock

        return restock.forward_once(self.engine, self.forwarder.client, self.site_key)

    def _forward_pause(self, seconds: float) -> None:
        """Wait between forwarding units; a stop or a resume from HQ ends the wait early."""
        self.forward_wakeup.wait(seconds)
        self.forward_wakeup.clear()

    def _heartbeat_loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            reply = self._unit("heartbeat", self.heartbeat.beat)
            if reply is None:
                failures += 1
                self._quietly(self.heartbeat.record_failure)
                wait = min(self._retry_wait(failures), self.heartbeat_interval)
            else:
                failures = 0
                self.follow_hq_pace(float(reply.interval_seconds))
                wait = jittered(self.heartbeat_interval)
            self.beat_wakeup.wait(wait)
            self.beat_wakeup.clear()

    def follow_hq_pace(self, interval_seconds: float) -> None:
        """HQ sets the pace: beat and sync at its interval (a no-op sync is one 304), and settle at least as
        often (a statement HQ issues reaches the finance role within a beat, not after a slower settlement
        cycle). Never faster than `min_interval`, whatever HQ says."""
        self.heartbeat_interval = max(interval_seconds, self.settings.min_interval)
        self.sync_interval = self.heartbeat_interval
        self.settlement_interval = min(self.settings.settlement_interval, self.heartbeat_interval)

    def _push_loop(self) -> None:
        """Keep the push channel open; when it fails, wait a bounded back-off (heartbeats carry commands
        meanwhile) or until HQ answers again, then reopen it."""
        failures = 0
        while not self.stop.is_set():
            started = time.monotonic()
            outcome = self._unit("push", self._push_once)
            if outcome is not None and not outcome.stalled:  # type: ignore[attr-defined]
                failures = 0
                # an HQ that does not hold long-polls (or a proxy cutting them) must not make this spin
                if not outcome.received:  # type: ignore[attr-defined]
                    self.stop.wait(max(0.0, PUSH_MIN_GAP - (time.monotonic() - started)))
                continue
            failures += 1
            self.push_wakeup.wait(min(self._retry_wait(failures), self.settings.push_retry_cap))
            self.push_wakeup.clear()

    def _push_once(self) -> object:
        try:
            return self.push.once()
        except HQError:
            if self.stop.is_set():  # shutdown ended the long-poll (abort): not a failure of HQ's
                return None
            raise

    def _settlement_loop(self) -> None:
        """Answers out and statements in, every settlement interval (the storefront cannot wake the agent)."""
        failures = 0
        while not self.stop.is_set():
            ok = self._unit("settlement", self.settlement.run)
            self._unit("grade", self._pull_grade)  # its own unit: a grade HQ cannot give never holds settlement
            failures = 0 if ok else failures + 1
            wait = self.settlement_interval if ok else self._retry_wait(failures)
            self.stop.wait(jittered(max(wait, self.settings.min_interval)))

    def _pull_grade(self) -> object:
        """HQ's grade of this site into the site database (agent.grade), at most every quarter hour."""
        from agent import grade

        return grade.pull_once(self.engine, self.settlement.client)

    def _stats_loop(self) -> None:
        while not self.stop.is_set():
            self._quietly(self.observer.observe)
            self.stop.wait(self.settings.stats_interval)

    def _unit(self, what: str, work: Callable[[], object]) -> object | None:
        """One unit of work; HQ and database failures become None (logged once, counted)."""
        try:
            result = work()
        except HQError as exc:
            self.once.problem(f"hq:{what}:{exc.kind}", f"HQ {what} failed: {exc.kind}", endpoint=what,
                              kind=exc.kind, detail=exc.detail[:160])
            return None
        except DB_ERRORS as exc:
            db_errors.record(self.metrics, what, exc)
            self.once.problem(f"db:{what}", "database unavailable", loop=what,
                              detail=str(exc).splitlines()[0][:160])
            return None
        if getattr(result, "contacted_hq", True):
            self.once.resolved_prefix(f"hq:{what}:", f"HQ {what} works again", endpoint=what)
        self.once.resolved(f"db:{what}", "database works again", loop=what)
        return result

    def _quietly(self, work: Callable[[], object]) -> None:
        try:
            work()
        except DB_ERRORS as exc:
            db_errors.record(self.metrics, "stats", exc)
            self.once.problem("db:stats", "database unavailable", loop="stats",
                              detail=str(exc).splitlines()[0][:160])
        else:
            self.once.resolved("db:stats", "database works again", loop="stats")

    # -- effects of commands ---------------------------------------------------------
    def _apply_effects(self, effects: Effects) -> None:
        if effects.new_licence is not None:
            for c in self.clients:
                c.set_token(effects.new_licence.token)
            self.plugins.reload(list(effects.new_licence.verified.claims.features))
        if effects.full_resync:
            self.sync.start_full_resync()
        if effects.sync_now or effects.full_resync:
            self.sync_wakeup.set()
        if effects.poll_reviews:
            self.review_due.set()
        if effects.retry_orders or effects.poll_reviews:
            self.forward_wakeup.set()
        if effects.support_bundle:
            threading.Thread(target=self.send_support_bundle, args=(effects.support_bundle,),
                             name="support-bundle", daemon=True).start()
        state = read_state(self.engine)
        self.metrics.set_licence_state(state.licence_status)

    def send_support_bundle(self, request_id: str) -> bool:
        """Build the redacted bundle and upload it to HQ (on its own client: loops keep theirs)."""
        from agent import support
        from agent.logs import RECENT

        s = self.settings
        secrets = support.site_secrets([s.licence_file, s.site_key_file, s.database_url_file],
                                       s.resolved_database_url(), [self.clients[0].token])
        try:
            archive = support.build(self.engine, self.metrics, dict(self.observer.summary), list(RECENT.lines),
                                    secrets)
            client = HQClient(self.clients[0].base_url, self.clients[0].token, self.metrics,
                              timeout=max(self.settings.http_timeout, 30.0))
            try:
                client.upload_support_bundle(request_id, archive)
            finally:
                client.close()
        except (HQError, *DB_ERRORS) as exc:
            log.warning("support bundle not sent", extra={"request_id": request_id, "detail": str(exc)[:160]})
            return False
        log.info("support bundle sent", extra={"request_id": request_id, "bytes": len(archive)})
        return True

    def _ready(self) -> tuple[bool, str]:
        if not self.ready:
            return False, "starting"
        if self.observer.summary.get("db") == "down":
            return False, "database unreachable"
        return True, "ok"


def run_migrations(url: str) -> None:
    """Bring the schema up to date in a child process: Alembic never occupies the agent's memory.

    The URL (it may hold a password) goes through the environment, never the command line.
    """
    import os
    import subprocess
    import sys

    from kitcore.errors import KitError

    code = "import os; from sitedb.migrate import upgrade; upgrade(os.environ['KIT_MIGRATE_URL'])"
    env = {**os.environ, "KIT_MIGRATE_URL": url, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1][:200]
        raise KitError(f"database migration failed: {last}")


def wait_for_database(url: str, budget: float, stop: threading.Event) -> None:
    """At start the database may still be booting (compose starts services together): wait, bounded."""
    from sqlalchemy import text

    from kitcore.errors import KitError
    from sitedb.engine import make_engine

    engine = make_engine(url)
    deadline = time.monotonic() + budget
    attempt = 0
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except DB_ERRORS as exc:
                attempt += 1
                if time.monotonic() > deadline or stop.is_set():
                    raise KitError(f"database unreachable after {budget:.0f}s: "
                                   f"{str(exc.orig).splitlines()[0][:160]}") from None
                if attempt == 1:
                    log.warning("waiting for the database", extra={"budget_seconds": budget})
                stop.wait(min(backoff_seconds(attempt, 0.5, 5.0), max(deadline - time.monotonic(), 0.1)))
    finally:
        engine.dispose()


def _read_secret(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot read {path.name}: {exc.strerror}") from None


def _data_path(url: str) -> Path:
    """The filesystem whose free space matters: the SQLite file's, else the working directory."""
    if url.startswith("sqlite") and ":///" in url:
        p = Path(url.split(":///", 1)[1])
        return p.parent if p.parent.exists() else Path(".")
    return Path(".")
