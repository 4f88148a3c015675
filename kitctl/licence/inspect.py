"""What `kitctl licence inspect` reports: claims, verdict, days left."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kitcore import safejson
from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import PinnedKeys, b64url_decode
from kitctl.licence.given import read_token_arg
from kitcore.licence.token import verify_licence


@dataclass
class Inspection:
    valid: bool
    status: str  # valid | grace | invalid
    reason: str | None
    claims: dict[str, Any] = field(default_factory=dict)
    days_left: int | None = None
    kid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "status": self.status,
            "reason": self.reason,
            "days_left": self.days_left,
            "kid": self.kid,
            "claims" if self.valid else "untrusted_claims": _redact(self.claims),
        }


def inspect_token(arg: str, keys: PinnedKeys) -> Inspection:
    """Verify the token named by `arg`; an invalid one is reported, not raised."""
    token = read_token_arg(arg)
    try:
        licence = verify_licence(token, keys)
    except LicenceError as exc:
        return Inspection(valid=False, status="invalid", reason=str(exc), claims=_unverified_claims(token))
    return Inspection(
        valid=True,
        status=licence.status,
        reason="in the grace period after expiry: renew now" if licence.status == "grace" else None,
        claims=licence.claims.model_dump(),
        days_left=licence.days_left,
        kid=licence.kid,
    )


def _unverified_claims(token: str) -> dict[str, Any]:
    """Best-effort claims of a token that did not verify, shown as untrusted."""
    try:
        payload = safejson.loads(b64url_decode(token.split(".")[1]), max_depth=jws.MAX_DEPTH)
    except (IndexError, ValueError):  # JSONRefused and binascii.Error are ValueErrors
        return {}
    return payload if isinstance(payload, dict) else {}


def _redact(claims: dict[str, Any]) -> dict[str, Any]:
    """Never print the registry password a licence carries."""
    out = dict(claims)
    reg = out.get("registry")
    if isinstance(reg, dict) and reg.get("password"):
        out["registry"] = {**reg, "password": "***"}
    return out


def render_inspection(report: Inspection, as_json: bool) -> None:
    from kitctl.console import err, out, print_json

    if as_json:
        print_json(report.as_dict())
        return
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    if not report.valid:  # untrusted claims are not shown as if they meant anything
        err().print(f"[bold red]invalid:[/] {escape(report.reason or '')}")
        return
    table = Table(title="licence (verified)", show_header=False)
    table.add_column("claim", style="bold")
    table.add_column("value")
    for name, value in _redact(report.claims).items():
        table.add_row(name, Text(_fmt(name, value)))
    out().print(table)
    colour = "green" if report.status == "valid" else "yellow"
    out().print(f"[{colour}]{report.status}[/]: {report.days_left} days left (key {report.kid})")
    if report.reason:
        err().print(f"[bold yellow]warning:[/] {escape(report.reason)}")


def _fmt(name: str, value: Any) -> str:
    if name in ("iat", "nbf", "exp") and isinstance(value, int):
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
