"""The limits a licence's claims and the token itself are held to, at their boundaries (values written out)."""

from __future__ import annotations

import pytest

from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.token import LICENCE_TYP, verify_licence


def _claims(issue, pinned) -> dict:  # type: ignore[no-untyped-def]
    return dict(jws.verify(issue(), pinned, LICENCE_TYP))


REGISTRY = {"url": "127.0.0.1:5000", "username": "site-x", "password": "pw"}
# claim: (the longest or largest value accepted, the first one refused) — the documented limits
LIMITS = [
    ("jti", "j" * 64, "j" * 65),
    ("jti", "j", ""),
    ("features", ["f"] * 64, ["f"] * 65),
    ("categories", ["game"] * 64, ["game"] * 65),
    ("categories", ["game"], []),
    ("regions", ["CN"] * 64, ["CN"] * 65),
    ("revenue_share_bps", 10_000, 10_001),
    ("revenue_share_bps", 0, -1),
    ("hq_url", "https://" + "h" * 504, "https://" + "h" * 505),
    ("registry", {**REGISTRY, "url": "r" * 255}, {**REGISTRY, "url": "r" * 256}),
    ("registry", {**REGISTRY, "url": "r"}, {**REGISTRY, "url": ""}),
    ("registry", {**REGISTRY, "username": "u" * 128}, {**REGISTRY, "username": "u" * 129}),
    ("registry", {**REGISTRY, "username": "u"}, {**REGISTRY, "username": ""}),
    ("registry", {**REGISTRY, "password": "p" * 256}, {**REGISTRY, "password": "p" * 257}),
    ("sub", "ab", "a"),
    ("sub", "a" * 63, "a" * 64),
]


@pytest.mark.parametrize("claim, accepted, refused", LIMITS)
def test_claim_limits(issue, pinned, store, claim, accepted, refused):
    claims = _claims(issue, pinned)
    ok = verify_licence(jws.sign({**claims, claim: accepted}, store, LICENCE_TYP), pinned)
    assert getattr(ok.claims, claim) == accepted or getattr(ok.claims, claim).model_dump() == accepted
    where = claim if claim != "registry" else "registry." + next(k for k in REGISTRY if refused.get(k) != REGISTRY[k])
    with pytest.raises(LicenceError, match=rf"^licence rejected: claim '{where}': "):
        verify_licence(jws.sign({**claims, claim: refused}, store, LICENCE_TYP), pinned)


def test_issue_carries_what_it_is_given(store, pinned):
    from kitcore.licence.token import issue_licence

    token = issue_licence(store, "xingchen", "pro", ["game", "game", "phone"], 30, "https://hq.example.cn",
                          registry=REGISTRY, features=["storefront"], regions=["CN", "HK"], revenue_share_bps=900,
                          now=1_750_000_000, jti="lic-1")
    held = verify_licence("  " + token + "\n", pinned, now=1_750_000_000)
    c = held.claims
    assert held.token == token and held.kid == store.current_kid()
    assert (c.iss, c.sub, c.jti, c.tier, c.categories) == ("kitctl-hq", "xingchen", "lic-1", "pro", ["game", "phone"])
    assert (c.features, c.regions, c.revenue_share_bps, c.hq_url) == (["storefront"], ["CN", "HK"], 900,
                                                                     "https://hq.example.cn")
    assert c.registry is not None and c.registry.model_dump() == REGISTRY
    plain = verify_licence(issue_licence(store, "xingchen", "basic", ["game"], 30, "https://hq.example.cn"), pinned).claims
    assert (plain.regions, plain.revenue_share_bps, plain.registry) == (["CN"], 1500, None)
    assert plain.features == ["storefront", "standard-theme"]
    assert verify_licence(issue_licence(store, "xingchen", "basic", ["game"], 30, "https://h", features=[]),
                          pinned).claims.features == []


def test_issue_refuses_unknown_categories_in_one_line(store):
    from kitcore.errors import InvalidInput
    from kitcore.licence.token import issue_licence

    with pytest.raises(InvalidInput, match=r"^unknown categories \['cars'\] \(known: game, phone, membership, gift, "
                                           r"software, video\)$"):
        issue_licence(store, "xingchen", "pro", ["game", "cars"], 30, "https://h")


def test_registry_password_may_be_left_out(issue, pinned, store):
    claims = {**_claims(issue, pinned), "registry": {"url": "r", "username": "u"}}
    assert verify_licence(jws.sign(claims, store, LICENCE_TYP), pinned).claims.registry.password is None


def _token_of_length(claims: dict, store, length: int) -> str:  # type: ignore[no-untyped-def]
    """A validly signed token exactly `length` characters long (padded with a claim verifiers ignore)."""
    start = max(0, (length - len(jws.sign(claims, store, LICENCE_TYP))) * 3 // 4 - 16)  # base64: 4 characters per 3 bytes
    for pad in range(start, length):
        token = jws.sign({**claims, "pad": "x" * pad}, store, LICENCE_TYP)
        if len(token) == length:
            return token
        if len(token) > length:
            break
    pytest.skip(f"no padding gives exactly {length} characters")  # base64 steps: try the neighbour


def test_a_token_may_be_8_kib_and_not_a_byte_more(issue, pinned, store):
    claims = _claims(issue, pinned)
    fits = next(t for t in (_maybe(claims, store, n) for n in (8192, 8191, 8190)) if t)
    assert verify_licence(fits, pinned).claims.sub == "xingchen"
    too_big = next(t for t in (_maybe(claims, store, n) for n in (8193, 8194, 8195)) if t)
    with pytest.raises(LicenceError, match=rf"^licence rejected: {len(too_big)} bytes is larger than the 8192-byte limit$"):
        verify_licence(too_big, pinned)
    assert len(fits) >= 8190 and len(too_big) <= 8195


def _maybe(claims: dict, store, length: int) -> str | None:  # type: ignore[no-untyped-def]
    try:
        return _token_of_length(claims, store, length)
    except pytest.skip.Exception:
        return None
