"""Finding installed plugins: the built-ins, then the `kitctl.plugins` entry points."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any, Callable

from plugins import ENTRY_POINT_GROUP

BUILTINS: dict[str, str] = {
    "coupons": "plugins.coupons:CouponsPlugin",
    "notify": "plugins.notify:NotifyPlugin",
    "regional-pricing": "plugins.regional_pricing:RegionalPricingPlugin",
}


@dataclass(frozen=True)
class Source:
    """One installed plugin before import: its registered name, where it comes from, how to load it."""

    name: str
    origin: str  # "builtin" or the distribution that registered it
    target: str  # "module:attr"
    load: Callable[[], Any]


def _import_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def builtin_sources() -> list[Source]:
    return [Source(n, "builtin", t, lambda t=t: _import_target(t)) for n, t in BUILTINS.items()]


def entry_point_sources() -> list[Source]:
    """Entry points of the group, minus re-registrations of the built-ins (kitctl's own wheel)."""
    from importlib.metadata import entry_points

    seen: set[tuple[str, str]] = {(n, t) for n, t in BUILTINS.items()}
    sources = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if (ep.name, ep.value) in seen:
            continue
        seen.add((ep.name, ep.value))
        dist = getattr(ep, "dist", None)
        origin = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "entry point"
        sources.append(Source(ep.name, origin, ep.value, ep.load))
    return sources


def discover() -> list[Source]:
    """Every installed plugin, built-ins first (a third party cannot shadow one)."""
    return builtin_sources() + entry_point_sources()
