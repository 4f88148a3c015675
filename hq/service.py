"""The HQ instance: settings, database, keys, vault and registry file wired together.

Endpoints and `kitctl hq` commands both work on an `HQ`; the commands open
one on the local HQ directory and call the same functions the API calls.
"""

from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Iterator

from hq.settings import HQSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from hq.registry import Htpasswd
    from hq.risk import RuleSource
    from hq.tokencache import TokenCache
    from hq.vault import Vault
    from kitcore.licence.keys import HQKeyStore, PinnedKeys


# the connection every `HQ.read()` in a `HQ.one_read()` block uses (this thread or task only)
_SHARED_READ: ContextVar["Connection | None"] = ContextVar("hq_shared_read", default=None)
QUEUED_SITES = "kitctl_queued_sites"  # session.info key: sites that got a command in this transaction (hq.commands)


def _token_cache() -> "TokenCache":
    from hq.tokencache import TokenCache

    return TokenCache()


@dataclass
class HQ:
    settings: HQSettings
    engine: "Engine"
    sessionmaker: "sessionmaker[Session]"
    _pinned: tuple[float, "PinnedKeys"] | None = field(default=None, repr=False)
    _sqlite_writer: threading.RLock = field(default_factory=threading.RLock, repr=False)
    token_cache: "TokenCache" = field(default_factory=lambda: _token_cache(), repr=False)
    # called with the sites that got a command, after the transaction that queued them commits (hq.push)
    on_commands: list[Callable[[set[str]], None]] = field(default_factory=list, repr=False)

    @classmethod
    def open(cls, settings: HQSettings, migrate: bool = True) -> "HQ":
        """Open (and by default migrate) the HQ in `settings.dir`; creates keys on first use."""
        from sqlalchemy.orm import sessionmaker

        from hq import db
        from kitcore.licence.keys import HQKeyStore

        settings.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(settings.dir, 0o700)
        store = HQKeyStore(settings.dir)
        if not store.exists():
            store.init()
        url = settings.effective_database_url
        if migrate:
            db.upgrade(url)
        engine = db.make_engine(url, settings.db_connect_seconds)
        sqlite_file = settings.dir / "hq.sqlite3"
        if sqlite_file.exists():
            os.chmod(sqlite_file, 0o600)
        hq = cls(settings=settings, engine=engine, sessionmaker=sessionmaker(engine, expire_on_commit=False))
        hq._ensure_epoch()
        return hq

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator["Session"]:
        """One transaction: committed on success, rolled back on any error."""
        with self.sessionmaker() as session:
            if self.engine.dialect.name == "sqlite":
                # One writer at a time in this process: queueing here is fair and prompt,
                # where SQLite's busy handler sleeps in steps of up to 100 ms.
                with self._sqlite_writer, session.begin():
                    yield session
            else:
                with session.begin():
                    yield session
            self._announce(session)

    def _announce(self, session: "Session") -> None:
        """After a commit: tell this process's push channel which sites got commands."""
        sites = session.info.pop(QUEUED_SITES, None)
        if sites:
            for listener in list(self.on_commands):
                listener(set(sites))

    @contextmanager
    def connection(self) -> Iterator["Connection"]:
        """One transaction on a Core connection (no ORM objects): for the hot paths."""
        if self.engine.dialect.name == "sqlite":
            with self._sqlite_writer, self.engine.begin() as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def read(self) -> Iterator["Connection"]:
        """A read-only Core connection; on SQLite it takes no write lock. Inside `one_read`, that one.

        On PostgreSQL it runs in autocommit: under READ COMMITTED each statement reads its own snapshot inside
        a transaction as well, so a BEGIN and a ROLLBACK would only add two round trips to every read; and
        psycopg forgets a connection's prepared statements at each ROLLBACK, which the pooled connections of
        the order path would otherwise pay for after every read."""
        shared = _SHARED_READ.get()
        if shared is not None and shared.engine is self.engine:
            yield shared
            return
        options = {"isolation_level": "AUTOCOMMIT"} if self.engine.dialect.name == "postgresql" else {}
        with self.engine.connect().execution_options(hq_read_only=True, **options) as conn:
            yield conn

    @contextmanager
    def one_read(self) -> Iterator["Connection"]:
        """Every `read()` in the block shares one connection: a page made of a dozen sections, each
        reading on its own, checks out one connection and ends one transaction instead of a dozen
        (on a busy host each round trip to PostgreSQL waits for its turn on a core)."""
        with self.read() as conn:
            token = _SHARED_READ.set(conn)
            try:
                yield conn
            finally:
                _SHARED_READ.reset(token)

    @cached_property
    def keys(self) -> "HQKeyStore":
        from kitcore.licence.keys import HQKeyStore

        return HQKeyStore(self.settings.dir)

    def pinned(self) -> "PinnedKeys":
        """HQ's own public keys, reloaded when the key index changes (rotation)."""
        mtime = self.keys.index_path.stat().st_mtime
        if self._pinned is None or self._pinned[0] != mtime:
            self._pinned = (mtime, self.keys.pinned())
        return self._pinned[1]

    @cached_property
    def vault(self) -> "Vault":
        from hq.vault import Vault

        return Vault.open(self.settings.dir)

    @cached_property
    def htpasswd(self) -> "Htpasswd":
        from hq.registry import Htpasswd

        return Htpasswd(self.settings.dir / "registry" / "htpasswd")

    @cached_property
    def rules(self) -> "RuleSource":
        from hq.risk import RuleSource

        return RuleSource(self.settings.dir / "risk-rules.json")

    def _ensure_epoch(self) -> None:
        from sqlalchemy import select

        from hq.models import Meta

        from sqlalchemy.exc import IntegrityError

        try:
            with self.session() as s:
                if s.scalar(select(Meta).where(Meta.key == "epoch")) is None:
                    s.add(Meta(key="epoch", value=uuid.uuid4().hex[:12]))
                    s.add(Meta(key="catalog_pruned_through", value="0"))
        except IntegrityError:  # another worker created them first
            pass

    def meta(self, session: "Session", key: str) -> str:
        from hq.models import Meta

        row = session.get(Meta, key)
        return row.value if row else ""
