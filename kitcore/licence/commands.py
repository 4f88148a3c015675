"""Signed HQ commands: the envelope HQ signs and the agent verifies, defined once for both ends.

HQ signs a command afresh at each delivery (`iat` now, `exp` after a TTL) while
its id and seq stay fixed. What a site then checks — that the command names
it, has not expired and is above the last seq applied — and what it does are
the agent's; this module only says what a well-formed, authentic command is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.token import MAX_TIME

if TYPE_CHECKING:
    from kitcore.licence.keys import HQKeyStore, PinnedKeys

COMMAND_TYP = "kitctl-command+jwt"
CommandType = Literal["revoke", "suspend", "resume", "licence", "sync_now", "support_bundle", "upgrade",
                      "review_decided"]
COMMAND_TYPES: tuple[str, ...] = get_args(CommandType)


class CommandEnvelope(BaseModel):
    """The claims of a command token, as HQ API v1 defines them; unknown claims ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)
    id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=1, le=2**63 - 1)  # a BIGINT column keeps it
    type: CommandType
    site: str
    iat: int = Field(ge=0, le=MAX_TIME)
    exp: int = Field(ge=0, le=MAX_TIME)
    payload: dict[str, Any] = {}


class CommandRefused(LicenceError):
    """A command token that must not be acted on; `reason` is "signature" or "malformed"."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def sign_command(store: HQKeyStore, *, id: str, seq: int, type: str, site: str, payload: dict[str, Any],
                 now: int, ttl_seconds: int) -> str:
    """A command token signed with HQ's current key, valid for `ttl_seconds` from `now`."""
    claims = {"id": id, "seq": seq, "type": type, "site": site, "iat": now, "exp": now + ttl_seconds,
              "payload": payload}
    return jws.sign(claims, store, COMMAND_TYP)


def verify_command(token: Any, keys: PinnedKeys) -> CommandEnvelope:
    """The envelope of an authentic, well-formed command token, or CommandRefused saying why not."""
    try:
        claims = jws.verify(token, keys, COMMAND_TYP, what="command")
    except LicenceError as exc:
        raise CommandRefused("signature", str(exc)) from None
    try:
        return CommandEnvelope.model_validate(claims)
    except ValidationError as exc:
        raise CommandRefused("malformed", f"command rejected: {exc.errors()[0]['msg']}") from None
