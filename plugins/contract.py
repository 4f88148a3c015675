"""What a plugin is: a manifest plus optional hooks, all plain Python.

A plugin is a subclass of `Plugin` with a `manifest` class attribute, exposed
under the entry-point group `kitctl.plugins`. The host instantiates it with its
validated settings and a `PluginContext`, then calls only the hooks below; every
hook has a harmless default, so a plugin overrides just what it contributes.
Hooks return plain data (dicts, lists, ints): the host validates and clamps it,
so a plugin can add to the kit but never weaken its checks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

Where = Literal["storefront", "agent", "kitctl"]
EVENTS = ("order_created", "order_decided", "catalog_item", "heartbeat")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,39}\Z")


class NoSettings(BaseModel):
    """The settings schema of a plugin that has none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Manifest:
    """Who a plugin is and what it needs; read before any of its code runs a hook.

    `feature` is the licence feature that unlocks it (see kitcore.licence.tiers);
    `kit_versions` a range such as ">=0.1,<1.0" checked against kitctl's version.
    Secret settings are fields typed `SecretStr` (stored 0600, never printed).
    """

    name: str
    version: str
    feature: str
    kit_versions: str = ">=0.1"
    settings: type[BaseModel] = NoSettings
    description: str = ""
    checkout_timeout_seconds: float = 1.0  # budget inside the buyer's checkout transaction (and of page_lines)
    event_timeout_seconds: float = 10.0  # budget of one event hook (webhooks, e-mail)
    api_version: int = 1  # the plugin API this plugin was written for (PLUGIN_API_VERSIONS)


@dataclass
class PluginContext:
    """What the host tells a plugin about where it runs."""

    where: Where
    kit_version: str
    config_dir: Path | None
    logger: logging.Logger


@dataclass(frozen=True)
class AdminAction:
    """An operator action (e.g. add a coupon): validated arguments in, rows out."""

    help: str
    arguments: type[BaseModel]
    run: Callable[[Any, BaseModel], list[dict[str, Any]]]  # (SQLAlchemy Session, args) -> rows

    def rows(self, session: Any, args: BaseModel) -> list[dict[str, Any]]:
        """The action's rows with JSON's types only: a plugin may return datetimes, decimals or UUIDs, and
        `--json`, the storefront's `plugin-admin` and the tables all print them the same way (ISO 8601, text)."""
        return [{str(key): _plain(value) for key, value in row.items()} for row in self.run(session, args)]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (date, time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)  # Decimal, UUID, Enum...: their text


class Plugin:
    """Base class of every plugin; override the hooks you contribute."""

    manifest: ClassVar[Manifest]

    def __init__(self, settings: BaseModel, context: PluginContext) -> None:
        self.settings = settings
        self.context = context
        self.log = context.logger

    # --- kitctl / render -------------------------------------------------
    def stack_fragment(self) -> dict[str, Any]:
        """Extra compose `services`, `volumes`, and `env` ({service: {VAR: value}}) as plain data."""
        return {}

    # --- storefront ------------------------------------------------------
    def checkout_fields(self) -> list[dict[str, Any]]:
        """Extra checkout inputs: {"name", "label", "required": bool, "max_length": int}."""
        return []

    def page_lines(self, slot: str, ctx: dict[str, Any]) -> list[str]:
        """Lines of plain text for a page slot (API 2): `slot` is "product" or "order", `ctx` what that page
        shows (PAGE_SLOTS). The shop escapes them; at most MAX_PAGE_LINES lines of MAX_PAGE_LINE characters."""
        return []

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        """Inside the checkout transaction: {"discount_cents": int, "extras": {}, "errors": {field: msg}}.

        `ctx["fields"]` holds only this plugin's own checkout fields. Database
        writes must go through `session` (Core statements preferred) so they
        commit or roll back with the order.
        """
        return {}

    def prepare_database(self, engine: Any) -> None:
        """Create this plugin's own tables (idempotent); called by admin tools and callers at start."""

    def admin_actions(self) -> dict[str, AdminAction]:
        """Operator actions run by `kitctl plugins admin NAME ACTION key=value…`."""
        return {}

    # --- events (storefront and agent) -----------------------------------
    def order_created(self, payload: dict[str, Any]) -> None:
        """An order row was committed (card keys never included)."""

    def on_order_decided(self, payload: dict[str, Any]) -> None:
        """HQ decided an order (card keys are stripped before plugins see it)."""

    def on_catalog_item(self, payload: dict[str, Any]) -> None:
        """The agent upserted or deleted a catalog item."""

    def on_heartbeat(self, payload: dict[str, Any]) -> None:
        """The agent completed a heartbeat."""


EVENT_HOOKS: dict[str, str] = {
    "order_created": "order_created",
    "order_decided": "on_order_decided",
    "catalog_item": "on_catalog_item",
    "heartbeat": "on_heartbeat",
}


def secret_fields(schema: type[BaseModel]) -> set[str]:
    """Names of the settings fields typed SecretStr (possibly optional): stored 0600, shown as ***."""
    names = set()
    for name, info in schema.model_fields.items():
        if _mentions_secret(info.annotation):
            names.add(name)
    return names


def _mentions_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_mentions_secret(arg) for arg in getattr(annotation, "__args__", ()) or ())


# the plugin API versions this kit runs: 1 (hooks, events, admin actions), 2 (adds page_lines)
PLUGIN_API_VERSIONS = (1, 2)

# page slot -> the keys of the context a plugin's page_lines receives there
PAGE_SLOTS: dict[str, tuple[str, ...]] = {
    "product": ("sku", "name", "category", "price_cents", "currency", "locale"),
    "order": ("order_id", "sku", "category", "status", "quantity", "total_cents", "currency", "locale", "extras"),
}
MAX_PAGE_LINES, MAX_PAGE_LINE = 3, 200


def check_manifest(manifest: Any) -> Manifest:
    """The manifest if it is well formed, else ValueError with one line saying what is wrong."""
    if not isinstance(manifest, Manifest):
        raise ValueError("has no plugins.contract.Manifest as `manifest`")
    if not NAME_RE.match(manifest.name):
        raise ValueError(f"name {manifest.name!r} must be lowercase letters, digits and '-' (2-40)")
    if not (isinstance(manifest.settings, type) and issubclass(manifest.settings, BaseModel)):
        raise ValueError("settings must be a pydantic model class")
    for budget in (manifest.checkout_timeout_seconds, manifest.event_timeout_seconds):
        if not 0 < budget <= 60:
            raise ValueError("time budgets must be between 0 and 60 seconds")
    parse_range(manifest.kit_versions)
    if manifest.api_version not in PLUGIN_API_VERSIONS:
        offered = ", ".join(str(v) for v in PLUGIN_API_VERSIONS)
        raise ValueError(f"targets plugin API {manifest.api_version!r}; this kit offers {offered}")
    return manifest


# --- version ranges: ">=0.1,<1.0" (no dependency on `packaging` at run time) ---

_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*\Z")


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.match(r"^\s*(\d+(?:\.\d+)*)", text)
    if not match:
        raise ValueError(f"version {text!r} is not dotted numbers")
    parts = tuple(int(p) for p in match.group(1).split("."))
    return parts + (0,) * (4 - len(parts))


def parse_range(spec: str) -> list[tuple[str, tuple[int, ...]]]:
    """The clauses of a range, or ValueError naming the bad clause."""
    clauses = []
    for raw in spec.split(","):
        match = _CLAUSE.match(raw)
        if not match:
            raise ValueError(f"kit_versions clause {raw.strip()!r} is not like '>=0.1'")
        clauses.append((match.group(1), _version_tuple(match.group(2))))
    return clauses


def version_in_range(version: str, spec: str) -> bool:
    """True when `version` satisfies every clause of `spec`."""
    have = _version_tuple(version)
    ops: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }
    return all(ops[op](have, want) for op, want in parse_range(spec))


@dataclass
class Adjustment:
    """The host's merged answer to one checkout (what callers receive, as a dict)."""

    discount_cents: int = 0
    extras: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"discount_cents": self.discount_cents, "extras": self.extras, "errors": self.errors}
