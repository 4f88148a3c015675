"""An HQ command's time and sequence rules at their boundaries (the agent's check, no database needed).

A command is acted on until a minute past its `exp` (clock tolerance), only
above the last applied sequence, and only when it names this site.
"""

from __future__ import annotations

import pytest

from agent.commands import CommandProcessor, Rejected
from kitcore.licence import jws
from kitcore.licence.keys import HQKeyStore

ISSUED = 1_750_000_000
EXPIRES = ISSUED + 600


@pytest.fixture
def store(tmp_path) -> HQKeyStore:
    s = HQKeyStore(tmp_path / "hq")
    s.init()
    return s


def command(store: HQKeyStore, seq: int = 5, site: str = "xingchen") -> str:
    return jws.sign({"id": f"c-{seq}", "seq": seq, "type": "suspend", "site": site, "iat": ISSUED, "exp": EXPIRES,
                     "payload": {}}, store, "kitctl-command+jwt")


def checker(store: HQKeyStore) -> CommandProcessor:
    return CommandProcessor(engine=None, keys=store.pinned(), site_id="xingchen", metrics=None)  # type: ignore[arg-type]


def test_a_command_is_good_until_a_minute_past_its_expiry(store):
    check = checker(store).check
    assert check(command(store), applied_seq=4, now=EXPIRES + 60).seq == 5
    with pytest.raises(Rejected) as late:
        check(command(store), applied_seq=4, now=EXPIRES + 61)
    assert late.value.reason == "expired"
    assert check(command(store), applied_seq=4, now=EXPIRES + 10**6, check_expiry=False).seq == 5  # resumed after a crash


def test_only_commands_above_the_applied_sequence(store):
    check = checker(store).check
    assert check(command(store, seq=5), applied_seq=4, now=ISSUED).seq == 5
    for applied in (5, 6):
        with pytest.raises(Rejected) as replay:
            check(command(store, seq=5), applied_seq=applied, now=ISSUED)
        assert replay.value.reason == "replayed"


def test_only_commands_for_this_site(store):
    with pytest.raises(Rejected) as other:
        checker(store).check(command(store, site="another"), applied_seq=0, now=ISSUED)
    assert other.value.reason == "wrong_site"
