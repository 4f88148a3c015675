"""What every gateway sandbox shares: the knobs for notifications, their bounded retries, serving on loopback."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def rsa_private(pem: str, what: str) -> rsa.RSAPrivateKey:
    """An RSA private key from a sandbox's state (ValueError naming `what`, never the key, if it is not one)."""
    key = serialization.load_pem_private_key(pem.encode(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{what} is not RSA")
    return key


def rsa_public(pem: str, what: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{what} is not RSA")
    return key


@dataclass
class Notifying:
    """A sandbox's notification knobs (`drop_notifications` plays a lost notification) and where it is served."""

    drop_notifications: bool = False
    notify_attempts: int = 5
    notify_delay: float = 0.5
    url: str = ""

    def notify_later(self, notify: Callable[[Any], bool], trade: Any) -> None:
        """Notify the merchant in the background, as gateways do, unless notifications are dropped."""
        if not self.drop_notifications:
            threading.Thread(target=notify, args=(trade,), daemon=True).start()

    def retried(self, send: Callable[[], bool]) -> bool:
        """Call `send` until it says the merchant acknowledged, backing off between tries (bounded)."""
        for attempt in range(self.notify_attempts):
            try:
                if send():
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(self.notify_delay * (2 ** attempt))
        return False


@contextmanager
def serving(sandbox: Any, name: str, host: str = "127.0.0.1", port: int | None = None) -> Iterator[Any]:
    """Serve `sandbox.app()` on a loopback port until the block ends (`sandbox.url` is set)."""
    from kitcore.serving import served_in_thread

    with served_in_thread(sandbox.app(), host, port or 0, name) as bound:
        sandbox.url = f"http://{host}:{bound}/"
        yield sandbox
