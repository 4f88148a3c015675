"""Validating what plugins hand back: the host trusts no shape it did not check."""

from __future__ import annotations

import json
import re
from typing import Any

FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
MAX_MESSAGE = 200
# Keys a plugin must never see in an event: delivered card keys and credentials.
SECRET_KEYS = frozenset({"card_keys", "delivery", "delivery_sealed", "secret", "password", "password_hash"})


class BadAnswer(ValueError):
    """A plugin returned something the host refuses to use."""


def checkout_field(raw: Any) -> dict[str, Any]:
    """A normalised checkout field or BadAnswer."""
    if not isinstance(raw, dict):
        raise BadAnswer("checkout field is not a dict")
    name, label = raw.get("name"), raw.get("label", raw.get("name"))
    required, max_length = raw.get("required", False), raw.get("max_length", 64)
    if not (isinstance(name, str) and FIELD_NAME.match(name)):
        raise BadAnswer(f"checkout field name {name!r} is not like 'coupon'")
    if not (isinstance(label, str) and 0 < len(label) <= 80):
        raise BadAnswer(f"checkout field {name}: label must be 1-80 characters")
    if not isinstance(required, bool):
        raise BadAnswer(f"checkout field {name}: required must be true or false")
    if not (isinstance(max_length, int) and not isinstance(max_length, bool) and 1 <= max_length <= 500):
        raise BadAnswer(f"checkout field {name}: max_length must be 1-500")
    return {"name": name, "label": label, "required": required, "max_length": max_length}


def page_lines(raw: Any) -> list[str]:
    """A plugin's lines for a page slot, or BadAnswer: plain one-line text, a few short lines."""
    from plugins.contract import MAX_PAGE_LINE, MAX_PAGE_LINES

    if not isinstance(raw, list) or not all(isinstance(line, str) for line in raw):
        raise BadAnswer("page lines must be a list of strings")
    if len(raw) > MAX_PAGE_LINES:
        raise BadAnswer(f"{len(raw)} page lines; at most {MAX_PAGE_LINES}")
    for line in raw:
        if not 0 < len(line) <= MAX_PAGE_LINE or any(c in line for c in "\r\n"):
            raise BadAnswer(f"a page line must be one line of 1-{MAX_PAGE_LINE} characters")
    return list(raw)


def discount(raw: Any) -> int:
    """A discount in cents: a non-negative int, else BadAnswer (the plugin's answer is then ignored)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise BadAnswer(f"discount_cents {raw!r} is not a non-negative integer")
    return raw


def one_line(message: Any) -> str:
    text = str(message).strip().splitlines()[0] if str(message).strip() else "invalid"
    return text[:MAX_MESSAGE]


def plain_data(value: Any, what: str) -> Any:
    """`value` if it is JSON data (so it can be stored and rendered), else BadAnswer."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise BadAnswer(f"{what} is not plain JSON data") from None


def stack_fragment(raw: Any, plugin: str) -> dict[str, dict[str, Any]]:
    """{"services", "volumes", "env"} of one plugin, checked by the stack's own rules (plugins.rules).

    The same rules run again on the rendered compose.yaml, so a fragment that
    passes here can still never weaken the core there.
    """
    from plugins.rules import FragmentRefused, check_fragment

    if not raw:
        return {"services": {}, "volumes": {}, "env": {}}
    if not isinstance(raw, dict) or set(raw) - {"services", "volumes", "env"}:
        raise BadAnswer(f"plugin {plugin}: stack fragment may only have services, volumes and env")
    data = plain_data(raw, "stack fragment")
    services, volumes, env = data.get("services") or {}, data.get("volumes") or {}, data.get("env") or {}
    if not all(isinstance(x, dict) for x in (services, volumes, env)):
        raise BadAnswer(f"plugin {plugin}: services, volumes and env must be mappings")
    try:
        services = check_fragment(plugin, {"services": services, "volumes": volumes, "env": env})
    except FragmentRefused as exc:
        raise BadAnswer(str(exc)) from None
    return {"services": services, "volumes": {name: {} for name in volumes}, "env": env}


def redact(payload: Any) -> Any:
    """A deep copy of an event payload without card keys or credentials."""
    if isinstance(payload, dict):
        return {k: redact(v) for k, v in payload.items() if str(k).lower() not in SECRET_KEYS}
    if isinstance(payload, (list, tuple)):
        return [redact(v) for v in payload]
    if isinstance(payload, (str, int, float, bool)) or payload is None:
        return payload
    return str(payload)  # datetimes, decimals: as text, never live objects


def first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return f"{where}: {message}"
    return one_line(exc)
