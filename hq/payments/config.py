"""Gateway credentials at HQ: sealed with the HQ vault at rest, opened only in HQ's memory, never sent to sites.

One gateway is enabled at a time; enabling one disables the others
(hq.payments.gateways opens them).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from hq import audit
from hq.clock import iso, utcnow
from hq.models import Payment, PaymentGateway
from hq.payments.contract import GatewayError, Probe
from hq.payments.gateways import context, named
from hq.payments.registry import gateway_class
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from pathlib import Path


    from hq.service import HQ


def configure(hq: "HQ", operator: str, name: str, credentials: dict[str, Any], enable: bool = True) -> None:
    """Store `name`'s credentials sealed (replacing earlier ones) and, by default, make it the enabled gateway."""
    cls = gateway_class(name)
    if cls is None:
        raise InvalidInput(f"unknown payment gateway {name!r}")
    try:
        cls({k: str(v) for k, v in credentials.items()})
    except ValueError as exc:
        raise InvalidInput(f"{name}: {exc}") from None
    sealed = hq.vault.encrypt(json.dumps(credentials, sort_keys=True), context=context(name))
    with hq.session() as s:
        if enable:
            s.execute(update(PaymentGateway).values(enabled=False))
        row = s.get(PaymentGateway, name)
        if row is None:
            row = PaymentGateway(name=name)
            s.add(row)
        row.config_enc, row.enabled, row.updated_at, row.updated_by = sealed, enable, utcnow(), operator
        audit.record(s, operator, "payments.configure", None, gateway=name, enabled=enable)  # never the credentials


def read_credentials(path: "Path") -> dict[str, Any]:
    """A gateway's credentials from a JSON file (an object of strings); one-line errors, never the content."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"credentials file {path.name}: {exc.strerror or exc}") from None
    except ValueError:
        raise InvalidInput(f"credentials file {path.name}: not JSON") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in data.items()):
        raise InvalidInput(f"credentials file {path.name}: expected a JSON object of strings")
    return {k: str(v) for k, v in data.items()}


KEY_FILE_LIMIT = 64 * 1024


def read_key_files(files: "dict[str, Path | None]") -> dict[str, str]:
    """Key material from files (`--private-key`, `--public-key`, `--apiv3-key`) as credential fields.

    One-line errors naming the file, never its content; the gateway then checks what the key is."""
    found: dict[str, str] = {}
    for field, path in files.items():
        if path is None:
            continue
        try:
            data = path.read_bytes()[:KEY_FILE_LIMIT + 1]
        except OSError as exc:
            raise InvalidInput(f"{field.replace('_', ' ')} file {path.name}: {exc.strerror or exc}") from None
        if len(data) > KEY_FILE_LIMIT:
            raise InvalidInput(f"{field.replace('_', ' ')} file {path.name}: larger than a key file can be")
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InvalidInput(f"{field.replace('_', ' ')} file {path.name}: not text (PEM or the key itself)") from None
        if not text:
            raise InvalidInput(f"{field.replace('_', ' ')} file {path.name}: empty")
        found[field] = text
    return found


def listing(hq: "HQ") -> list[dict[str, Any]]:
    """The configured gateways without their credentials, each with its payments by status: what operators see."""
    with hq.read() as conn:
        rows = conn.execute(select(PaymentGateway.name, PaymentGateway.enabled, PaymentGateway.updated_at,
                                   PaymentGateway.updated_by).order_by(PaymentGateway.name)).all()
        counts: dict[str, dict[str, int]] = {}
        for gateway, status, n in conn.execute(select(Payment.gateway, Payment.status, func.count())
                                               .group_by(Payment.gateway, Payment.status)):
            counts.setdefault(gateway, {})[status] = int(n)
    return [{"name": n, "enabled": bool(e), "updated_at": iso(u), "updated_by": b, "payments": counts.get(n, {})}
            for n, e, u, b in rows]


def test(hq: "HQ", operator: str, name: str) -> str:
    """Reach a configured gateway with its stored credentials (`Probe`); one line, or GatewayError saying why.
    Either outcome is audited (`payments.test`, with that line: it never holds the credentials)."""
    with hq.read() as conn:
        gateway = named(hq, conn, name)
    if gateway is None:
        raise InvalidInput(f"payment gateway {name!r} is not configured")
    try:
        if not isinstance(gateway, Probe):
            raise GatewayError(f"{name} has no connection test")
        line = gateway.probe()
    except GatewayError as exc:
        _audit_test(hq, operator, name, False, str(exc))
        raise
    _audit_test(hq, operator, name, True, line)
    return line


def _audit_test(hq: "HQ", operator: str, name: str, ok: bool, line: str) -> None:
    with hq.session() as s:
        audit.record(s, operator, "payments.test", None, gateway=name, ok=ok, result=line.splitlines()[0][:200])


def disable(hq: "HQ", operator: str, name: str) -> None:
    with hq.session() as s:
        row = s.get(PaymentGateway, name)
        if row is None:
            raise InvalidInput(f"payment gateway {name!r} is not configured")
        row.enabled, row.updated_at, row.updated_by = False, utcnow(), operator
        audit.record(s, operator, "payments.disable", None, gateway=name)
