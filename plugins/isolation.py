"""Running foreign code without letting it take the order down with it.

Every hook runs in its own daemon thread with a deadline; the caller waits at
most that long. Inside the checkout transaction a plugin gets a `GuardedSession`:
it cannot commit, roll back or close the buyer's transaction, and once its
budget is spent the host revokes it, so a late plugin cannot touch the order.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

MAX_HUNG_PER_PLUGIN = 2  # threads still running past their deadline before a plugin is skipped


class HookTimeout(Exception):
    """A hook did not return within its budget."""


class HookBusy(Exception):
    """A plugin still has hung calls in flight; it is skipped until they finish."""


class DeadlineRunner:
    """Runs calls in threads with a deadline; remembers the ones that overran."""

    def __init__(self) -> None:
        self._hung: dict[str, list[threading.Thread]] = {}
        self._lock = threading.Lock()

    def call(self, plugin: str, hook: str, fn: Callable[[], Any], timeout: float) -> Any:
        """fn() or its exception; HookTimeout past the deadline, HookBusy if the plugin is wedged."""
        self._refuse_if_wedged(plugin)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"plugin-{plugin}-{hook}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            with self._lock:
                self._hung.setdefault(plugin, []).append(thread)
            raise HookTimeout(f"{plugin}.{hook} exceeded its {timeout:g}s budget")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def _refuse_if_wedged(self, plugin: str) -> None:
        with self._lock:
            alive = [t for t in self._hung.get(plugin, []) if t.is_alive()]
            self._hung[plugin] = alive
            if len(alive) >= MAX_HUNG_PER_PLUGIN:
                raise HookBusy(f"{plugin} has {len(alive)} calls still running past their budget")


_FORBIDDEN = frozenset({"commit", "rollback", "close", "begin", "begin_nested", "invalidate", "reset"})


class GuardedSession:
    """The buyer's Session as a plugin may use it: no transaction control, revocable."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._lock = threading.RLock()
        self._revoked = False

    def __getattr__(self, name: str) -> Any:
        if name in _FORBIDDEN:
            raise PermissionError(f"plugins may not call session.{name}(): the checkout owns the transaction")
        attr = getattr(self._session, name)
        if not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if self._revoked:
                    raise PermissionError("this checkout is over for the plugin (time budget spent)")
                return attr(*args, **kwargs)

        return guarded

    def revoke(self) -> None:
        """Wait for a statement in flight, then refuse every later use."""
        with self._lock:
            self._revoked = True
