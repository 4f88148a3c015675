"""Password hashing with argon2id, bounded so a burst of checkouts cannot exhaust memory."""

from __future__ import annotations

import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's argon2id baseline (19 MiB, t=2, p=1): ~20 ms, and at most 4 at once.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
_SLOTS = threading.BoundedSemaphore(4)
_DUMMY = _HASHER.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    with _SLOTS:
        return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the hash exists, so timing does not reveal accounts."""
    with _SLOTS:
        try:
            return _HASHER.verify(stored_hash or _DUMMY, password) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def generate_password() -> str:
    """A strong password for a new staff account, shown once."""
    return secrets.token_urlsafe(15)
