"""The agent's door to the plugin host: emit events, never fail because of a plugin.

Until the `plugins` package is part of the build, `plugins.host` may be
absent; then this adapter is a host with no plugins (the lead removes the
guard on merge).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("agent.plugins")


class NoPlugins:
    loaded: list[str] = []
    refused: dict[str, str] = {}

    def plugin(self, name: str) -> None:
        return None

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        return None

    def prepare_database(self, engine: Any) -> None:
        return None


class PluginEvents:
    """Holds the current plugin host; reloads it when the licence's features change."""

    def __init__(self, config_dir: Path | None = None, enabled: list[str] | None = None, engine: Any = None) -> None:
        self.config_dir = config_dir
        self.engine = engine  # the site database: plugins create their tables in it when they are loaded
        self.enabled = enabled  # the site's choice (KIT_PLUGINS); None = every licensed plugin
        self.features: tuple[str, ...] | None = None
        self.host: Any = NoPlugins()
        self._listened: dict[str, bool] = {}

    def reload(self, features: list[str]) -> None:
        key = tuple(sorted(features))
        if key == self.features:
            return
        self.features = key
        self.host = load_host(list(key), self.config_dir, self.enabled)
        if self.engine is not None:  # the agent owns the site's schema: a plugin's tables exist before its events
            self.host.prepare_database(self.engine)
        self._listened = {}
        log.info("plugin host loaded", extra={"plugins": list(getattr(self.host, "loaded", []))})

    def wants(self, event: str) -> bool:
        """Whether a loaded plugin hooks `event`: a sync of 100k SKUs skips 100k no-op emits."""
        known = self._listened.get(event)
        if known is None:
            known = self._listened[event] = listens(self.host, event)
        return known

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        try:
            self.host.emit(event, payload)
        except Exception:  # the host promises not to raise; the agent does not rely on it
            log.exception("plugin host raised on emit", extra={"event": event})


def listens(host: Any, event: str) -> bool:
    """True when a plugin of `host` overrides the hook of `event` (True when that cannot be told)."""
    try:
        from plugins.contract import EVENT_HOOKS, Plugin  # type: ignore[import-not-found]
    except ImportError:
        return bool(getattr(host, "loaded", []))
    hook = EVENT_HOOKS.get(event)
    if hook is None:
        return False
    base = getattr(Plugin, hook)
    for name in getattr(host, "loaded", []):
        plugin = host.plugin(name)
        if plugin is None or getattr(type(plugin), hook, base) is not base:
            return True
    return False


def load_host(features: list[str], config_dir: Path | None, enabled: list[str] | None = None) -> Any:
    try:
        from plugins.host import PluginHost  # type: ignore[import-not-found]
    except ImportError:
        return NoPlugins()
    try:
        return PluginHost.load(features=features, enabled=enabled, config_dir=config_dir, where="agent")
    except Exception as exc:
        log.error("plugin host failed to load; running without plugins", extra={"detail": str(exc)[:200]})
        return NoPlugins()
