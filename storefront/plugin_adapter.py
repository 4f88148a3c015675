"""The plugin host as the storefront sees it, re-created when the licence's features change.

A plugin failure never breaks a page: the host isolates each plugin, and a
host that cannot load at all leaves the shop running without plugins.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("storefront.plugins")


class NoPlugins:
    """What the storefront uses when no plugin host is available."""

    loaded: list[str] = []
    refused: dict[str, str] = {}

    def plugin(self, name: str) -> None:
        return None

    def checkout_fields(self) -> list[dict[str, Any]]:
        return []

    def page_lines(self, slot: str, ctx: dict[str, Any]) -> list[tuple[str, str]]:
        return []

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"discount_cents": 0, "extras": {}, "errors": {}}

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        return None

    def prepare_database(self, engine: Any) -> None:
        return None


def load_host(features: list[str], enabled: list[str] | None, config_dir: Path | None) -> Any:
    from plugins.host import PluginHost

    try:
        return PluginHost.load(features=list(features), enabled=enabled, config_dir=config_dir, where="storefront")
    except Exception:  # a broken plugin set must not take the shop down
        log.exception("plugin host failed to load; continuing without plugins")
        return NoPlugins()


class PluginHostCache:
    """One host per feature set: a licence upgrade by heartbeat enables a plugin without redeploy."""

    def __init__(self, enabled: list[str] | None, config_dir: Path | None, schema_engine: Any = None) -> None:
        self._enabled, self._config_dir = enabled, config_dir
        self._schema_engine = schema_engine  # set when this storefront owns the schema (it migrates on start)
        self._key: tuple[str, ...] | None = None
        self._host: Any = NoPlugins()
        self._lock = threading.Lock()

    def get(self, features: list[str]) -> Any:
        key = tuple(sorted(features or []))
        with self._lock:
            if key != self._key:
                self._host = load_host(list(key), self._enabled, self._config_dir)
                if self._schema_engine is not None:
                    self._host.prepare_database(self._schema_engine)
                self._key = key
            return self._host
