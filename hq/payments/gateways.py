"""The configured gateways, opened from their sealed credentials and cached per HQ vault.

The hot path (every order batch, every notification) reads one small row and
decrypts nothing: the opened gateway is kept per (name, updated_at) until an
operator changes it.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from sqlalchemy import select

from hq.models import PaymentGateway
from hq.payments.contract import Gateway
from hq.payments.registry import gateway_class

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hq.service import HQ
    from hq.vault import Vault

_lock = threading.Lock()
_opened: "WeakKeyDictionary[Vault, dict[str, tuple[datetime, Gateway]]]" = WeakKeyDictionary()


def context(name: str) -> str:
    """The vault's associated data for a gateway's credentials: a sealed value opens only as its own gateway's."""
    return f"gateway:{name}"


# built once: every order batch reads it (twice when a gateway may be asked before the transaction)
_ENABLED = (select(PaymentGateway.name, PaymentGateway.config_enc, PaymentGateway.updated_at)
            .where(PaymentGateway.enabled.is_(True)).limit(1))


def active(hq: "HQ", conn: "Connection") -> Gateway | None:
    """The enabled gateway, or None (then HQ runs the test mode: approval settles the order)."""
    row = conn.execute(_ENABLED).first()
    return None if row is None else _open(hq.vault, *row)


def named(hq: "HQ", conn: "Connection", name: str) -> Gateway | None:
    """A configured gateway by name, enabled or not (its late notifications still verify)."""
    row = conn.execute(select(PaymentGateway.name, PaymentGateway.config_enc, PaymentGateway.updated_at)
                       .where(PaymentGateway.name == name)).first()
    return None if row is None else _open(hq.vault, *row)


def _open(vault: "Vault", name: str, sealed: str, updated_at: datetime) -> Gateway:
    with _lock:
        cached = _opened.get(vault, {}).get(name)
        if cached is not None and cached[0] == updated_at:
            return cached[1]
    config = json.loads(vault.decrypt(sealed, context=context(name)))
    gateway: Gateway = gateway_class(name)(config)
    with _lock:
        _opened.setdefault(vault, {})[name] = (updated_at, gateway)
    return gateway
