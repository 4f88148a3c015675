"""The licence as the agent holds it: verified offline, stored in site_state.

Time alone moves a licence from active to grace to expired; HQ's signed
commands move it to suspended or revoked (and back). The storefront reads
`site_state.licence_status` to decide whether it takes orders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from agent.state import audit, update_state
from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import PinnedKeys
from kitcore.licence.token import LICENCE_TYP, VerifiedLicence, verify_licence

HQ_HELD = ("suspended", "revoked")  # states only a signed HQ command sets or clears


@dataclass(frozen=True)
class HeldLicence:
    """A verified licence plus its state by the clock: active, grace or expired."""

    verified: VerifiedLicence
    time_state: str

    @property
    def site_id(self) -> str:
        return self.verified.claims.sub

    @property
    def token(self) -> str:
        return self.verified.token


def evaluate(token: str, keys: PinnedKeys, now: float | None = None) -> HeldLicence:
    """Verify `token`; a licence past its grace is still recognised, as `expired`.

    Anything else wrong with it (signature, claims, not yet valid) raises.
    """
    moment = time.time() if now is None else now
    try:
        verified = verify_licence(token, keys, now=moment)
    except LicenceError:
        exp = jws.verify(token, keys, LICENCE_TYP, what="licence").get("exp")
        if not isinstance(exp, int) or moment <= exp:
            raise
        return HeldLicence(verify_licence(token, keys, now=exp - 1), "expired")
    return HeldLicence(verified, "active" if verified.status == "valid" else "grace")


def choose_licence(file_token: str, stored_token: str | None, keys: PinnedKeys) -> HeldLicence:
    """The file's licence, unless HQ already sent a newer one for the same site (kept in the DB)."""
    from_file = evaluate(file_token, keys)
    if not stored_token or stored_token.strip() == from_file.token:
        return from_file
    try:
        stored = evaluate(stored_token, keys)
    except LicenceError:
        return from_file
    same_site = stored.site_id == from_file.site_id
    newer = stored.verified.claims.iat > from_file.verified.claims.iat
    return stored if same_site and newer else from_file


def combined_status(time_state: str, current: str) -> str:
    """An HQ-held state outlives the clock; otherwise the clock decides."""
    return current if current in HQ_HELD else time_state


def store_licence(conn: Connection, held: HeldLicence, status: str, reason: str | None) -> None:
    """Write the licence's grants where the storefront reads them."""
    claims = held.verified.claims
    update_state(
        conn,
        licence_token=held.token,
        licence_jti=claims.jti,
        tier=claims.tier,
        features=list(claims.features),
        categories=list(claims.categories),
        regions=list(claims.regions),
        revenue_share_bps=claims.revenue_share_bps,
        licence_expires_at=claims.exp,
        licence_status=status,
        status_reason=reason,
    )


def time_reason(held: HeldLicence) -> str | None:
    """What the storefront should say about the licence's term, if anything."""
    if held.time_state == "grace":
        return f"licence expired {-held.verified.seconds_left // 86400} days ago; renew it (grace period)"
    if held.time_state == "expired":
        return "licence expired beyond its grace period; renew it to take orders again"
    return None


def install_start_licence(engine: Engine, held: HeldLicence, current_status: str,
                          current_reason: str | None) -> str:
    """At start: store the chosen licence, keeping a suspension/revocation HQ made."""
    status = combined_status(held.time_state, current_status)
    reason = current_reason if status in HQ_HELD else time_reason(held)
    with engine.begin() as conn:
        store_licence(conn, held, status, reason)
        audit(conn, "licence_loaded", jti=held.verified.claims.jti, tier=held.verified.claims.tier,
              status=status)
    return status
