"""HQ's signed commands: verified, checked, persisted, then applied — in that order.

A command is acted on only if its EdDSA signature verifies against the
pinned HQ keys, it names this site, it has not expired, and its sequence is
above the last one applied (so a replayed command is refused). It is written
to `hq_commands` before anything changes, so a crash mid-apply resumes it at
the next start; `site_state.applied_seq` (sent in every heartbeat) is the ack.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Connection, Engine, Row, insert, select, update

from agent.licence import HeldLicence, evaluate, store_licence, time_reason
from agent.logs import LogOnce
from agent.metrics import AgentMetrics
from agent.outbox import WAITING
from agent.state import audit, lock_state, state_value, update_state, utcnow
from kitcore.errors import LicenceError
from kitcore.images import IMAGE_TAG
from kitcore.licence.commands import CommandEnvelope, CommandRefused, verify_command
from kitcore.licence.keys import PinnedKeys
from sitedb.suspension import valid_until
from sitedb.tables import hq_commands, orders

log = logging.getLogger("agent.commands")
CLOCK_SKEW_SECONDS = 60
REASON_MAX = 300
ORDER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}\Z")  # hq.fields.ORDER_ID_PATTERN
REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


@dataclass
class Effects:
    """What the rest of the agent must do after a command committed."""

    new_licence: HeldLicence | None = None
    sync_now: bool = False
    full_resync: bool = False
    retry_orders: bool = False  # HQ may take orders again: held ones are due now
    support_bundle: str | None = None  # HQ asks for a support bundle: upload it under this request id
    poll_reviews: bool = False  # an operator decided an order under review: ask HQ for it now


class Rejected(Exception):
    def __init__(self, reason: str, detail: str, envelope: CommandEnvelope | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.envelope = envelope  # when the token verified


class CommandProcessor:
    """Turns the command tokens of a heartbeat answer into state changes."""

    def __init__(self, engine: Engine, keys: PinnedKeys, site_id: str, metrics: AgentMetrics,
                 on_effects: Callable[[Effects], None] | None = None) -> None:
        self.engine = engine
        self.keys = keys
        self.site_id = site_id
        self.metrics = metrics
        self.on_effects = on_effects or (lambda effects: None)
        self.once = LogOnce(log)
        # the heartbeat and the push channel both deliver commands: one batch at a time, so a
        # command both bring is checked against the sequence the other has just applied
        self._lock = threading.RLock()

    # -- entry points ------------------------------------------------------------
    def process(self, tokens: list[str], now: float | None = None) -> int:
        """Verify every token, then apply the acceptable ones in sequence order."""
        if not tokens:
            return 0
        with self._lock:
            return self._process(tokens, time.time() if now is None else now)

    def _process(self, tokens: list[str], moment: float) -> int:
        applied_seq = self.applied_seq()
        accepted: list[tuple[CommandEnvelope, str]] = []
        for token in tokens:
            try:
                accepted.append((self.check(token, applied_seq, moment), token))
            except Rejected as rej:
                if not self._delivered_again(rej):
                    self._reject(token, rej)
        applied = 0
        for envelope, token in sorted(accepted, key=lambda pair: pair[0].seq):
            if self._persist(envelope, token):
                self._apply(envelope)
                applied += 1
        return applied

    def resume_unapplied(self) -> int:
        """At start: apply commands persisted before a crash but never applied."""
        with self._lock:
            return self._resume_unapplied()

    def _resume_unapplied(self) -> int:
        with self.engine.connect() as conn:
            applied_seq = state_value(conn, "applied_seq")
            pending = conn.execute(select(hq_commands.c.token)
                                   .where(hq_commands.c.applied_at.is_(None), hq_commands.c.seq > applied_seq)
                                   .order_by(hq_commands.c.seq)).scalars().all()
        done = 0
        for token in pending:
            try:
                envelope = self.check(token, 0, time.time(), check_expiry=False)
            except Rejected as rej:
                self._reject(token, rej)
                continue
            self._apply(envelope)
            done += 1
        return done

    def check(self, token: str, applied_seq: int, now: float, check_expiry: bool = True) -> CommandEnvelope:
        """The verified envelope, or Rejected saying why it must not be acted on."""
        try:
            envelope = verify_command(token, self.keys)
        except CommandRefused as exc:
            raise Rejected(exc.reason, str(exc)) from None
        if envelope.site != self.site_id:
            raise Rejected("wrong_site", f"command rejected: it is for site {envelope.site!r}")
        if check_expiry and envelope.exp + CLOCK_SKEW_SECONDS < now:
            raise Rejected("expired", f"command rejected: seq {envelope.seq} expired")
        if envelope.seq <= applied_seq:
            raise Rejected("replayed", f"command rejected: seq {envelope.seq} was already applied", envelope)
        return envelope

    def _delivered_again(self, rej: Rejected) -> bool:
        """A "replay" of this very command (same id and seq, applied here): HQ delivered it again before it
        saw the ack (the push channel and a heartbeat both carried it). Not acted on, and no cause for alarm."""
        if rej.reason != "replayed" or rej.envelope is None:
            return False
        envelope = rej.envelope
        cmd = hq_commands.c
        with self.engine.connect() as conn:
            return conn.execute(select(cmd.id).where(cmd.id == envelope.id, cmd.seq == envelope.seq,
                                                     cmd.applied_at.is_not(None))).first() is not None

    def applied_seq(self) -> int:
        with self.engine.connect() as conn:
            return state_value(conn, "applied_seq")

    # -- steps ---------------------------------------------------------------------
    def _reject(self, token: str, rej: Rejected) -> None:
        """Count and log a refused command once per distinct token (HQ may resend it)."""
        key = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:24]
        if self.once.problem(key, rej.detail, reason=rej.reason):
            self.metrics.commands_rejected.labels(rej.reason).inc()

    def _persist(self, envelope: CommandEnvelope, token: str) -> bool:
        """Write the command before acting; False when the seq is taken by another id."""
        cmd = hq_commands.c
        with self.engine.begin() as conn:
            existing = conn.execute(select(cmd.applied_at).where(cmd.id == envelope.id)).first()
            if existing is not None:
                return existing.applied_at is None
            clash = conn.execute(select(cmd.id).where(cmd.seq == envelope.seq)).first()
            if clash is not None:
                self._reject(token, Rejected("replayed", f"command rejected: seq {envelope.seq} already used"))
                return False
            conn.execute(insert(hq_commands).values(id=envelope.id, seq=envelope.seq, type=envelope.type,
                                                    payload=_safe_payload(envelope), token=token))
        return True

    def _apply(self, envelope: CommandEnvelope) -> None:
        effects = Effects()
        try:
            with self.engine.begin() as conn:
                state = lock_state(conn)
                outcome = self._change_state(conn, state, envelope, effects)
                conn.execute(update(hq_commands).where(hq_commands.c.id == envelope.id)
                             .values(applied_at=utcnow(), outcome=outcome[:200]))
                update_state(conn, applied_seq=max(state.applied_seq, envelope.seq))
                audit(conn, f"command_{envelope.type}", seq=envelope.seq, outcome=outcome[:200])
        except Exception:
            self.metrics.command_outcomes.labels(envelope.type, "failed").inc()
            raise
        self.metrics.command_outcomes.labels(envelope.type, "refused" if outcome.startswith("refused")
                                             else "applied").inc()
        self.metrics.commands_applied.labels(envelope.type).inc()
        self.metrics.applied_seq.set(envelope.seq)
        log.info("applied HQ command", extra={"type": envelope.type, "seq": envelope.seq, "outcome": outcome})
        self.on_effects(effects)

    def _change_state(self, conn: Connection, state: Row[Any], env: CommandEnvelope, effects: Effects) -> str:
        reason = str(env.payload.get("reason") or "")[:REASON_MAX] or None
        if env.type == "revoke":
            update_state(conn, licence_status="revoked", status_reason=reason or "licence revoked by HQ")
            return "revoked"
        if env.type == "suspend":
            # a timed suspension's end stays in this command's payload, which is what the site shows
            # (sitedb.suspension); HQ lifts it with a resume
            until = valid_until(env.payload.get("until"))
            update_state(conn, licence_status="suspended", status_reason=reason or "licence suspended by HQ")
            return f"suspended until {until}" if until else "suspended"
        if env.type == "resume":
            held = self._current_licence(state)
            status = held.time_state if held else "active"
            update_state(conn, licence_status=status, status_reason=time_reason(held) if held else None)
            effects.retry_orders = retry_held_orders(conn) > 0
            return f"resumed ({status})"
        if env.type == "sync_now":
            effects.sync_now = True
            return "sync requested"
        if env.type == "support_bundle":
            request_id = env.payload.get("request_id")
            if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
                return "refused: support bundle request id is not a UUID"
            effects.support_bundle = request_id
            return f"support bundle {request_id} requested"
        if env.type == "upgrade":
            return upgrade_outcome(env.payload)
        if env.type == "review_decided":
            return review_decided(conn, env.payload, effects)
        return self._new_licence(conn, state, env, effects)

    def _new_licence(self, conn: Connection, state: Row[Any], env: CommandEnvelope, effects: Effects) -> str:
        token = env.payload.get("token")
        try:
            held = evaluate(token if isinstance(token, str) else "", self.keys)
        except LicenceError as exc:
            self.metrics.commands_rejected.labels("malformed").inc()
            log.warning("HQ sent a licence that does not verify; kept the current one",
                        extra={"seq": env.seq, "detail": str(exc)})
            return f"refused: {exc}"
        if held.site_id != self.site_id:
            self.metrics.commands_rejected.labels("wrong_site").inc()
            return f"refused: licence is for site {held.site_id!r}"
        keep_suspension = state.licence_status == "suspended"
        status = "suspended" if keep_suspension else held.time_state
        reason = state.status_reason if keep_suspension else time_reason(held)
        if set(held.verified.claims.categories) != set(state.categories or []):
            effects.full_resync = True  # HQ only sends tombstones for what we may see: mark and sweep
        store_licence(conn, held, status, reason)
        effects.new_licence = held
        effects.retry_orders = retry_held_orders(conn) > 0  # e.g. a renewal after HQ refused an expired one
        return f"licence {held.verified.claims.tier} until {held.verified.claims.exp}"

    def _current_licence(self, state: Row[Any]) -> HeldLicence | None:
        try:
            return evaluate(state.licence_token or "", self.keys)
        except LicenceError:
            return None


def retry_held_orders(conn: Connection) -> int:
    """Make pending orders waiting out a backoff due now (in the command's transaction).

    While suspended (or unlicensed), HQ refuses orders and their retries back off towards the
    cap (minutes); after a resume or a new licence they should not wait that long.
    """
    now = utcnow()
    result = conn.execute(update(orders).where(orders.c.status == "pending", orders.c.next_attempt_at > now)
                          .values(next_attempt_at=now))
    return result.rowcount or 0


def review_decided(conn: Connection, payload: dict[str, Any], effects: Effects) -> str:
    """HQ decided an order under review: its poll is due now (in the command's transaction) and the forwarding
    loop asks at once, so the buyer sees the decision in about a second rather than at the next poll."""
    order_id = payload.get("order")
    if not isinstance(order_id, str) or not ORDER_ID.match(order_id):
        return "refused: review decision names no order id"
    due = conn.execute(update(orders).where(orders.c.id == order_id, orders.c.status.in_(WAITING))
                       .values(next_attempt_at=utcnow())).rowcount or 0
    effects.poll_reviews = due > 0
    return f"review of {order_id} decided" + ("" if due else " (not waiting here)")


def upgrade_outcome(payload: dict[str, Any]) -> str:
    """An upgrade is the host's to run (the agent has no Docker socket): the stored, signed command is what the
    host service (`kitctl service run`) reads, verifies again and acts on; here only its version is checked."""
    version = payload.get("version")
    if not isinstance(version, str) or not IMAGE_TAG.match(version):
        return "refused: upgrade version is not an image tag"
    return f"upgrade to {version} handed to the host service"


def _safe_payload(envelope: CommandEnvelope) -> dict[str, Any]:
    """What the command row keeps readable; the licence token stays only inside the signed copy."""
    return {k: ("<token>" if k == "token" else v) for k, v in envelope.payload.items()}

