"""X-Forwarded-For and -Proto are believed only from the stack's proxy container, never from anyone else.

The proxy (Caddy) replaces any X-Forwarded-For a buyer sends with the address
it saw, so from the proxy the header is the buyer's address. Any other peer
(another container on the network, a process on the host) could write any
address there and dodge HQ's per-IP rules or frame another buyer, so for them
the header is ignored and the peer itself is the client. `KIT_FORWARDED_ALLOW_IPS`
names the proxy: addresses, networks, or host names (compose writes `proxy`),
resolved again when the proxy container comes back with a new address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any, Callable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str], set[str]]
RESOLVE_EVERY = 5.0  # seconds: how soon a recreated proxy's new address is believed (and how often DNS is asked)


def resolve_host(name: str) -> set[str]:
    """Every address `name` has now (Docker's DNS for a service name); none when it does not resolve."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}
    except OSError:
        return set()


class TrustedPeers:
    """Which peers may forward a client's address: fixed addresses and networks, and names looked up anew."""

    def __init__(self, spec: str, resolve: Resolve | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.networks: list[IPNetwork] = []
        self.names: list[str] = []
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.append(entry)
        self._resolve, self._clock = resolve, clock
        self._resolved: set[str] = set()
        self._at: float | None = None

    async def trusts(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if any(address in network for network in self.networks):
            return True
        return bool(self.names) and peer in await self._names_now()

    async def _names_now(self) -> set[str]:
        """The names' addresses, looked up at most every RESOLVE_EVERY seconds in a thread: a slow DNS answer
        (the proxy not started yet) never holds the event loop, so health probes and pages still answer."""
        now = self._clock()
        if self._at is None or now - self._at >= RESOLVE_EVERY:
            self._at = now  # first: requests arriving meanwhile use the last answer, not a lookup each
            loop = asyncio.get_running_loop()
            resolve = self._resolve or resolve_host
            found = await asyncio.gather(*(loop.run_in_executor(None, resolve, n) for n in self.names))
            self._resolved = set().union(*found)
        return self._resolved


class ForwardedFromProxy:
    """ASGI middleware: the client address and scheme the trusted proxy forwarded, else the peer's own."""

    def __init__(self, app: Any, trusted: TrustedPeers) -> None:
        self.app, self.trusted = app, trusted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] in ("http", "websocket") else {}
        forwarding = b"x-forwarded-for" in headers or b"x-forwarded-proto" in headers
        if forwarding and await self.trusted.trusts((scope.get("client") or (None,))[0]):
            forwarded_for = headers.get(b"x-forwarded-for", b"").decode("latin-1").split(",")[-1].strip()
            proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1").strip().lower()
            scope = dict(scope)
            if _is_address(forwarded_for):
                scope["client"] = (forwarded_for, 0)
            if proto in ("http", "https"):
                scope["scheme"] = proto if scope["type"] == "http" else {"http": "ws", "https": "wss"}[proto]
        await self.app(scope, receive, send)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
