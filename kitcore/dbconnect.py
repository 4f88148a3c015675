"""PostgreSQL connections with a connect deadline and dead-peer detection (site database and HQ's).

libpq (and psycopg, which resolves names itself with a blocking `getaddrinfo`) has no
bound on name resolution and a two-second floor on `connect_timeout`. When the
database's container is stopped its name takes the engine's DNS ~10 s to fail, and
every request that needs a new connection waited that long. Here each new connection
first resolves and reaches the server within the deadline (`kitcore.net`), then hands
psycopg the address it found, so psycopg does no lookup of its own.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from kitcore import net

if TYPE_CHECKING:
    from sqlalchemy import Engine

# A connection whose peer vanished without closing it (a partition, a frozen host) is
# noticed by TCP within seconds instead of the kernel's ~15 minutes of retransmits.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2,
             "tcp_user_timeout": 5000}


def pg_connect_args(connect_timeout: float, statement_timeout: float | None = None) -> dict[str, Any]:
    """psycopg connect arguments: the libpq timeouts (2 s is libpq's floor) and keepalives."""
    args: dict[str, Any] = {"connect_timeout": max(2, int(connect_timeout + 0.999)), **KEEPALIVE}
    if statement_timeout:
        args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    return args


def bound_connects(engine: "Engine", deadline: float = net.CONNECT_DEADLINE) -> None:
    """Every new connection of `engine` resolves and reaches its server within `deadline` seconds.

    While the server is known to be unreachable, one caller at a time tries again (within
    half the deadline) and the others fail at once: during an outage requests are answered
    immediately, and the first attempt after the server is back succeeds.
    """
    from sqlalchemy import event

    gate = _Gate()

    @event.listens_for(engine, "do_connect")
    def _reach_first(_dialect, _record, _cargs, cparams) -> None:  # type: ignore[no-untyped-def]
        host = cparams.get("host")
        if not host or str(host).startswith("/") or cparams.get("hostaddr"):
            return
        port = int(cparams.get("port") or 5432)
        trying = gate.enter()
        if trying is None:
            raise _operational(f"the database at {host}:{port} is unreachable (another request is retrying)")
        try:
            sock = net.connect(str(host), port, deadline / 2 if trying else deadline)
        except OSError as exc:
            gate.leave(reached=False, retried=trying)
            raise _operational(f"cannot reach the database at {host}:{port}: {exc}") from None
        gate.leave(reached=True, retried=trying)
        cparams["hostaddr"] = sock.getpeername()[0]
        sock.close()


class _Gate:
    """Whether the server was unreachable at the last attempt, and whether someone is retrying now."""

    def __init__(self) -> None:
        self.down = False
        self.retrying = False
        self.lock = threading.Lock()

    def enter(self) -> bool | None:
        """False: connect normally; True: you are the one retrying; None: fail now, someone else retries."""
        with self.lock:
            if not self.down:
                return False
            if self.retrying:
                return None
            self.retrying = True
            return True

    def leave(self, reached: bool, retried: bool | None) -> None:
        with self.lock:
            self.down = not reached
            if retried:
                self.retrying = False


def _operational(message: str) -> Exception:
    """psycopg's OperationalError, so SQLAlchemy reports it as a DBAPI disconnect like any other."""
    import psycopg

    return psycopg.OperationalError(message)
