"""The verified-token cache: used only while a full verification would still pass."""

from __future__ import annotations

from hq.tokencache import TokenCache, Verified


def entry(now: float, not_before: float = 0.0, not_after: float | None = None) -> Verified:
    return Verified("site-a", "jti-1", not_before, not_after, cached_at=now)


def test_hit_within_ttl_and_window():
    cache, keys = TokenCache(ttl=60), object()
    assert cache.get(keys, "tok", False, now=1000) is None
    cache.put(keys, "tok", False, entry(1000, not_before=900, not_after=2000))
    assert cache.get(keys, "tok", False, now=1010).jti == "jti-1"
    assert cache.get(keys, "tok", True, now=1010) is None  # the heartbeat's check is a different one


def test_miss_after_ttl_expiry_or_outside_window():
    cache, keys = TokenCache(ttl=60), object()
    cache.put(keys, "tok", False, entry(1000, not_before=900, not_after=1030))
    assert cache.get(keys, "tok", False, now=1061) is None  # ttl
    assert cache.get(keys, "tok", False, now=1031) is None  # licence past its (grace) expiry
    cache.put(keys, "early", False, entry(1000, not_before=1005))
    assert cache.get(keys, "early", False, now=1001) is None  # not valid yet


def test_new_keys_forget_everything():
    cache, old, new = TokenCache(), object(), object()
    cache.put(old, "tok", False, entry(1000))
    assert cache.get(new, "tok", False, now=1001) is None
    assert cache.get(old, "tok", False, now=1001) is None


def test_bounded_size_drops_the_oldest_not_everything():
    cache, keys = TokenCache(max_entries=10), object()
    for i in range(25):
        cache.put(keys, f"t{i}", False, entry(1000))
    assert len(cache._entries) <= 10
    assert cache.get(keys, "t24", False, now=1001) is not None and cache.get(keys, "t23", False, now=1001) is not None
    assert cache.get(keys, "t0", False, now=1001) is None and cache.get(keys, "t14", False, now=1001) is None
    cache.put(keys, "t25", False, entry(1000))  # full again: one tenth (the oldest) goes, the rest stay
    assert len(cache._entries) == 10 and cache.get(keys, "t24", False, now=1001) is not None


def test_an_entry_lasts_an_hour_by_default():
    cache, keys = TokenCache(), object()
    cache.put(keys, "tok", True, entry(1000))
    assert cache.get(keys, "tok", True, now=1000 + 3599) is not None
    assert cache.get(keys, "tok", True, now=1000 + 3601) is None
    assert cache.max_entries >= 2 * 10_000  # a 10,000-site fleet's two kinds of check fit
