"""The one metric the host keeps: plugin failures, by plugin, hook and kind (low cardinality)."""

from __future__ import annotations

import threading
from typing import Any

_COUNTERS: dict[int, tuple[Any, Any]] = {}
_LOCK = threading.Lock()

def errors_counter(registry: Any = None) -> Any:
    """`kitagent_plugin_errors_total{plugin,hook,kind}` registered once per registry.

    `kind` is one of import, refused, error, timeout, busy, invalid, dropped.
    """
    from prometheus_client import REGISTRY, Counter

    registry = REGISTRY if registry is None else registry
    with _LOCK:
        cached = _COUNTERS.get(id(registry))
        if cached is not None and cached[0] is registry:
            return cached[1]
        counter = Counter(
            "kitagent_plugin_errors",
            "Plugin failures isolated by the host (import, raised, timed out, invalid answer).",
            ["plugin", "hook", "kind"],
            registry=registry,
        )
        _COUNTERS[id(registry)] = (registry, counter)
        return counter
