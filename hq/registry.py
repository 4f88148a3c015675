"""Pull access to HQ's image registry: an htpasswd file (bcrypt) that HQ maintains.

Debian's `docker-registry` reads it with `auth: htpasswd: {path: ...}`. A
licence adds its site's entry, revoking removes it. Writes are atomic
(temp file + rename) under a lock file so two HQ workers never interleave.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import bcrypt


class Htpasswd:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def entries(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        result = {}
        for line in self.path.read_text().splitlines():
            user, sep, digest = line.partition(":")
            if sep:
                result[user] = digest
        return result

    def _write(self, entries: dict[str, str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{u}:{d}\n" for u, d in sorted(entries.items())))
        os.replace(tmp, self.path)

    def set(self, username: str, password: str) -> None:
        """Add or replace `username` (bcrypt, `$2y$` as Apache's htpasswd writes it)."""
        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
        digest = "$2y$" + digest[4:]
        with self._locked():
            entries = self.entries()
            entries[username] = digest
            self._write(entries)

    def remove(self, username: str) -> bool:
        with self._locked():
            entries = self.entries()
            if entries.pop(username, None) is None:
                return False
            self._write(entries)
            return True

    def check(self, username: str, password: str) -> bool:
        digest = self.entries().get(username)
        if digest is None:
            return False
        return bcrypt.checkpw(password.encode(), ("$2b$" + digest[4:]).encode())


def new_password() -> str:
    return secrets.token_urlsafe(24)


def username_for(site_id: str) -> str:
    return f"site-{site_id}"
