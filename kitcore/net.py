"""Name resolution and TCP connects with a deadline, for every connection the kit's services open.

`socket.getaddrinfo` takes no timeout. On a Docker network the name of a stopped
container is not known to the engine's DNS, which then asks the host's resolvers and
fails only after ~10 s: a storefront or agent that resolves `db` or `hq` inline hangs
that long on every attempt. Here the lookup runs on a helper thread and the caller
waits at most its deadline. Callers who arrive while a lookup of the same name is
fresh share it, so an outage costs a handful of waiting threads, not one per request.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

CONNECT_DEADLINE = 1.0  # seconds for resolving a name and opening a TCP connection
SHARE_SECONDS = 0.25  # a lookup younger than this is shared instead of starting another
MAX_PENDING = 32  # lookups stuck in the resolver at once (each ends by itself, ~10 s at worst)


class ResolveError(OSError):
    """The name did not resolve within the deadline, or resolved to nothing usable."""


@dataclass
class _Lookup:
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    addresses: list[str] = field(default_factory=list)
    error: str | None = None


_lock = threading.Lock()
_latest: dict[tuple[str, int], _Lookup] = {}
_pending = 0


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


def resolve(host: str, port: int, timeout: float = CONNECT_DEADLINE) -> list[str]:
    """The addresses of `host` (IP literals as they are); raises ResolveError after `timeout`."""
    if _is_ip(host):
        return [host]
    lookup = _lookup(host, port)
    if not lookup.done.wait(timeout):
        raise ResolveError(f"resolving {host!r} took longer than {timeout:.1f}s")
    if lookup.error is not None:
        raise ResolveError(f"cannot resolve {host!r}: {lookup.error}")
    return list(lookup.addresses)


def _lookup(host: str, port: int) -> _Lookup:
    """A lookup of (host, port) younger than SHARE_SECONDS, or a new one on a helper thread."""
    global _pending
    key = (host, port)
    now = time.monotonic()
    with _lock:
        current = _latest.get(key)
        if current is not None and (now - current.started < SHARE_SECONDS
                                    or (not current.done.is_set() and _pending >= MAX_PENDING)):
            return current
        lookup = _latest[key] = _Lookup(started=now)
        _pending += 1
    threading.Thread(target=_run, args=(key, lookup), name="resolve", daemon=True).start()
    return lookup


def _run(key: tuple[str, int], lookup: _Lookup) -> None:
    global _pending
    try:
        infos = socket.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        lookup.addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not lookup.addresses:
            lookup.error = "no address"
    except OSError as exc:
        lookup.error = exc.strerror or type(exc).__name__
    finally:
        with _lock:
            _pending -= 1
        lookup.done.set()


def connect(host: str, port: int, timeout: float = CONNECT_DEADLINE) -> socket.socket:
    """A TCP connection to `host:port` made within `timeout` in all (resolution included).

    Raises ResolveError, TimeoutError or another OSError. The socket is returned blocking
    with the remaining time as its timeout; callers set their own afterwards.
    """
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    for address in resolve(host, port, timeout):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(remaining)
        try:
            sock.connect((address, port))
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    if last is None or isinstance(last, TimeoutError):
        raise TimeoutError(f"connecting to {host}:{port} took longer than {timeout:.1f}s")
    raise last


def remaining(deadline: float) -> float:
    """Seconds left until a `time.monotonic()` deadline (never negative)."""
    return max(0.0, deadline - time.monotonic())
