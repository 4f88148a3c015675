"""In-process sliding-window rate limits for logins and order lookups.

One storefront process runs per site, so process memory is the right place;
keys are hashed buckets like ("lookup-ip", ip), never stored beyond the window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class RateLimiter:
    """At most `limit` hits per `window` seconds per key."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000,
                 on_refused: Callable[[], None] | None = None) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self.on_refused = on_refused or (lambda: None)  # counts a throttled request (storefront.metrics)
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._evict(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _evict(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:  # still full: drop the oldest half rather than grow
            for key in list(self._hits)[: self.max_keys // 2]:
                del self._hits[key]

    def blocked(self, key: str) -> bool:
        """Whether `key` has used up its allowance (does not count as a hit)."""
        with self._lock:
            refused = len(self._recent(key, time.monotonic())) >= self.limit
        if refused:
            self.on_refused()
        return refused

    def hit(self, key: str) -> bool:
        """Count one hit; False when it is over the limit."""
        with self._lock:
            now = time.monotonic()
            hits = self._recent(key, now)
            allowed = len(hits) < self.limit
            if allowed:
                hits.append(now)
        if not allowed:
            self.on_refused()
        return allowed

    def count(self, key: str) -> int:
        """Hits of `key` within the window."""
        with self._lock:
            return len(self._recent(key, time.monotonic()))

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)


class GuessThrottle:
    """Wrong passwords counted per client and account together, and per account.

    A client that failed `pair_limit` times for an account is refused for that
    account until the window passes; other clients are not affected, so nobody
    can lock the owner out by guessing from elsewhere. Only when guesses for
    one account come from many clients (`account_limit` failures in the
    window) does the account itself get careful: then a client that already
    failed for it is refused, while a fresh client (no failure of its own for
    this account) still gets its attempt. Guessing stays slow (`pair_limit`
    per client per window, and a client limit above this), and the owner still
    gets in.
    """

    def __init__(self, pair_limit: int, account_limit: int, window: float,
                 on_refused: Callable[[], None] | None = None) -> None:
        self.pair = RateLimiter(pair_limit, window)
        self.account = RateLimiter(account_limit, window)
        self.on_refused = on_refused or (lambda: None)

    @staticmethod
    def _pair(client: str, account: str) -> str:
        return f"{client}\x00{account}"

    def allowed(self, client: str, account: str) -> bool:
        pair = self._pair(client, account)
        refused = self.pair.blocked(pair) or (self.account.blocked(account) and self.pair.count(pair) > 0)
        if refused:
            self.on_refused()
        return not refused

    def failed(self, client: str, account: str) -> None:
        self.pair.hit(self._pair(client, account))
        self.account.hit(account)

    def succeeded(self, client: str, account: str) -> None:
        self.pair.reset(self._pair(client, account))


class Limits:
    """The limits the storefront enforces, in one place so they are easy to review."""

    def __init__(self, checkouts_per_minute: int = 120, throttled: Callable[[str], None] | None = None) -> None:
        def counted(name: str) -> Callable[[], None]:  # a refusal is counted in kitshop_throttled_requests_total
            return (lambda: throttled(name)) if throttled else (lambda: None)

        self.login_ip = RateLimiter(20, 300, on_refused=counted("login_ip"))  # attempts per client per 5 min
        # wrong passwords per 15 min
        self.login = GuessThrottle(pair_limit=5, account_limit=30, window=900, on_refused=counted("login"))
        self.lookup_ip = RateLimiter(20, 60, on_refused=counted("lookup_ip"))  # order lookups per client per minute
        # wrong order passwords per 15 min
        self.lookup = GuessThrottle(pair_limit=5, account_limit=30, window=900, on_refused=counted("lookup"))
        # checkouts per client per minute
        self.checkout_ip = RateLimiter(checkouts_per_minute, 60, on_refused=counted("checkout_ip"))
