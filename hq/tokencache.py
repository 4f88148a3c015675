"""Verified licence tokens, remembered per worker so a site's next request skips the signature check.

Verifying a token (Ed25519 plus claim validation) costs more than the rest of
a heartbeat. What a verification proves never changes for the same token and
the same pinned keys, except through time (nbf and exp), so an entry stores
those times and is used only while they still pass; it is dropped after
`ttl` seconds (an hour: a fleet's agents re-ask every 25 s, and an entry that lapsed
while they all were connected made every one of them verify again at the same moment)
or when HQ's keys change; when full, the oldest tenth goes, so a fleet larger than the
cache never re-verifies all at once. Revocation and suspension are not
cached here: every request still reads the licence's status from the
database (hq.auth), so a revoked licence is refused at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Verified:
    """What a successful verification established about one token."""

    site_id: str
    jti: str
    not_before: float  # earliest moment a full verification would pass (nbf/iat minus skew)
    not_after: float | None  # last moment it would pass; None when expiry is not checked
    cached_at: float


class TokenCache:
    def __init__(self, ttl: float = 3600.0, max_entries: int = 50_000) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[tuple[bool, str], Verified] = {}
        self._keys: object | None = None
        self._lock = threading.Lock()

    def get(self, keys: object, token: str, allow_expired: bool, now: float | None = None) -> Verified | None:
        """The cached verification of `token` under `keys`, if it still holds at `now`."""
        moment = time.time() if now is None else now
        with self._lock:
            if keys is not self._keys:  # rotation or reload: nothing verified before counts
                self._entries.clear()
                self._keys = keys
                return None
            hit = self._entries.get((allow_expired, token))
        if hit is None or moment - hit.cached_at > self.ttl or moment < hit.not_before:
            return None
        if hit.not_after is not None and moment > hit.not_after:
            return None
        return hit

    def put(self, keys: object, token: str, allow_expired: bool, entry: Verified) -> None:
        with self._lock:
            if keys is not self._keys:
                self._entries.clear()
                self._keys = keys
            if len(self._entries) >= self.max_entries:
                self._drop_oldest(max(1, self.max_entries // 10))
            self._entries[(allow_expired, token)] = entry

    def _drop_oldest(self, count: int) -> None:
        """Bounded memory: the entries put longest ago go (a dict keeps insertion order)."""
        for key in list(itertools.islice(self._entries, count)):
            del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
