"""Licence time rules at their boundaries, with timestamps written out rather than computed from the code's constants.

The rules (DESIGN.md, docs): a licence is valid from `nbf` (a clock up to two
minutes behind is tolerated) until `exp`; past `exp` it keeps working in grace
for 14 days (plus the same two minutes); after that it is refused.
"""

from __future__ import annotations

import pytest

from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.token import LICENCE_TYP, verify_licence

T0 = 1_750_000_000  # issued at (2025-06-15T15:06:40Z)
EXP = T0 + 30 * 86_400  # issued for 30 days: 1_752_592_000
SKEW = 120  # seconds of clock difference tolerated
GRACE_END = EXP + 1_209_600 + SKEW  # 14 days of grace


@pytest.fixture
def token(issue) -> str:  # type: ignore[no-untyped-def]
    return issue(days=30, now=T0)


def test_the_token_carries_the_times_it_was_issued_with(token, pinned):
    claims = verify_licence(token, pinned, now=T0).claims
    assert (claims.iat, claims.nbf, claims.exp) == (T0, T0, 1_752_592_000)


def test_not_before_tolerates_two_minutes_of_clock_difference_and_no_more(token, pinned):
    assert verify_licence(token, pinned, now=T0 - 120).status == "valid"
    with pytest.raises(LicenceError, match=r"^licence rejected: not valid yet \(nbf/iat in the future; check the clock\)$"):
        verify_licence(token, pinned, now=T0 - 121)


def test_issued_at_in_the_future_is_refused_like_not_before(store, pinned, issue):
    claims = jws.verify(issue(days=30, now=T0), pinned, LICENCE_TYP)
    early = jws.sign({**claims, "nbf": T0 - 3600, "iat": T0}, store, LICENCE_TYP)
    assert verify_licence(early, pinned, now=T0 - 120).status == "valid"
    with pytest.raises(LicenceError, match="not valid yet"):
        verify_licence(early, pinned, now=T0 - 121)


def test_valid_until_expiry_then_grace(token, pinned):
    at_exp = verify_licence(token, pinned, now=EXP)
    assert (at_exp.status, at_exp.seconds_left, at_exp.days_left) == ("valid", 0, 0)
    day_before = verify_licence(token, pinned, now=EXP - 86_400)
    assert (day_before.status, day_before.seconds_left, day_before.days_left) == ("valid", 86_400, 1)
    assert verify_licence(token, pinned, now=EXP + 119).status == "valid"  # within the clock tolerance
    grace = verify_licence(token, pinned, now=EXP + 120)
    assert (grace.status, grace.seconds_left, grace.days_left) == ("grace", -120, -1)


def test_grace_lasts_fourteen_days_and_not_a_second_more(token, pinned):
    last = verify_licence(token, pinned, now=GRACE_END)
    assert last.status == "grace" and last.seconds_left == -1_209_720
    with pytest.raises(LicenceError, match="^licence rejected: expired 14 days ago, beyond the grace period$"):
        verify_licence(token, pinned, now=GRACE_END + 1)
    with pytest.raises(LicenceError, match="^licence rejected: expired 15 days ago, beyond the grace period$"):
        verify_licence(token, pinned, now=EXP + 1_296_000)  # exactly 15 days


def test_expiry_must_come_after_not_before(store, pinned, issue):
    claims = jws.verify(issue(days=30, now=T0), pinned, LICENCE_TYP)
    for exp in (T0, T0 - 1):
        with pytest.raises(LicenceError, match="^licence rejected: exp is not after nbf$"):
            verify_licence(jws.sign({**claims, "exp": exp}, store, LICENCE_TYP), pinned, now=T0)
    one_second = jws.sign({**claims, "exp": T0 + 1}, store, LICENCE_TYP)
    assert verify_licence(one_second, pinned, now=T0).seconds_left == 1


def test_issue_accepts_one_day_to_ten_years(issue, pinned):
    assert verify_licence(issue(days=1, now=T0), pinned, now=T0).claims.exp == T0 + 86_400
    assert verify_licence(issue(days=3660, now=T0), pinned, now=T0).claims.exp == T0 + 316_224_000
    for days in (0, 3661):
        with pytest.raises(Exception, match="--days must be between 1 and 3660"):
            issue(days=days, now=T0)


def test_another_issuer_is_refused_by_name(store, pinned, issue):
    claims = jws.verify(issue(days=30, now=T0), pinned, LICENCE_TYP)
    with pytest.raises(LicenceError, match="^licence rejected: issuer 'someone-else' is not 'kitctl-hq'$"):
        verify_licence(jws.sign({**claims, "iss": "someone-else"}, store, LICENCE_TYP), pinned, now=T0)
    with pytest.raises(LicenceError, match="^licence rejected: signature does not verify"):
        verify_licence(issue(days=30, now=T0)[:-4] + "AAAA", pinned, now=T0)
