"""The command envelope both ends share: what HQ signs, the agent's verification reads back."""

from __future__ import annotations

import pytest

from kitcore.licence import jws
from kitcore.licence.commands import COMMAND_TYP, COMMAND_TYPES, CommandRefused, sign_command, verify_command


def _signed(store, **overrides) -> str:  # type: ignore[no-untyped-def]
    args = dict(id="c-1", seq=3, type="suspend", site="xingchen", payload={"reason": "unpaid"}, now=1_000,
                ttl_seconds=600)
    args.update(overrides)
    return sign_command(store, **args)


def test_a_signed_command_verifies_with_the_pinned_keys(store, pinned) -> None:  # type: ignore[no-untyped-def]
    envelope = verify_command(_signed(store), pinned)
    assert (envelope.id, envelope.seq, envelope.type, envelope.site) == ("c-1", 3, "suspend", "xingchen")
    assert (envelope.iat, envelope.exp, envelope.payload) == (1_000, 1_600, {"reason": "unpaid"})
    assert jws.verify(_signed(store), pinned, "kitctl-command+jwt")["exp"] == 1_600  # the wire contract
    assert COMMAND_TYP == "kitctl-command+jwt"
    assert COMMAND_TYPES == ("revoke", "suspend", "resume", "licence", "sync_now", "support_bundle", "upgrade",
                             "review_decided")


def test_a_licence_or_a_bad_signature_is_refused_as_signature(store, pinned, issue) -> None:  # type: ignore[no-untyped-def]
    for token in (issue(), _signed(store)[:-4] + "AAAA", "not a token"):
        with pytest.raises(CommandRefused) as refused:
            verify_command(token, pinned)
        assert refused.value.reason == "signature" and "\n" not in str(refused.value)


@pytest.mark.parametrize("overrides", [{"type": "reboot"}, {"seq": 0}, {"id": ""}, {"seq": "3"}])
def test_a_malformed_envelope_is_refused_as_malformed(store, pinned, overrides) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandRefused) as refused:
        verify_command(_signed(store, **overrides), pinned)
    assert refused.value.reason == "malformed" and str(refused.value).startswith("command rejected: ")


def test_refusals_say_command_and_keep_the_reason(store, pinned) -> None:  # type: ignore[no-untyped-def]
    for token in (_signed(store)[:-4] + "AAAA", "x.y"):
        with pytest.raises(CommandRefused) as refused:
            verify_command(token, pinned)
        assert str(refused.value).startswith("command rejected: ") and str(refused.value) != "command rejected: None"


@pytest.mark.parametrize("overrides, accepted", [
    ({"id": "c" * 64}, True), ({"id": "c" * 65}, False), ({"id": "c"}, True), ({"seq": 1}, True), ({"seq": 0}, False),
    ({"seq": 9_223_372_036_854_775_807}, True), ({"seq": 9_223_372_036_854_775_808}, False),  # a BIGINT's range
    ({"now": 0, "ttl_seconds": 0}, True), ({"now": -1, "ttl_seconds": 1}, False), ({"now": 0, "ttl_seconds": -1}, False),
])
def test_envelope_limits(store, pinned, overrides, accepted) -> None:  # type: ignore[no-untyped-def]
    if accepted:
        envelope = verify_command(_signed(store, **overrides), pinned).model_dump()
        key, value = next(iter(overrides.items()))
        assert envelope["iat" if key == "now" else key] == value
    else:
        with pytest.raises(CommandRefused) as refused:
            verify_command(_signed(store, **overrides), pinned)
        assert refused.value.reason == "malformed"
