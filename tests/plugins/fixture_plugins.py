"""Small plugins that misbehave on purpose, injected into the host as sources.

Every one of them is a real `Plugin` subclass run through the real host; only
discovery is replaced (the test hands the host these sources).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel, SecretStr

from plugins.contract import AdminAction, Manifest, Plugin
from plugins.discovery import Source

HANG_RELEASE = threading.Event()  # set at teardown so hung threads end


class RaisingPlugin(Plugin):
    manifest = Manifest(name="raiser", version="1.0", feature="coupons")

    def checkout_fields(self) -> list[dict[str, Any]]:
        return [{"name": "raiser_code", "label": "Raiser", "required": False, "max_length": 10}]

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom in adjust_checkout")

    def order_created(self, payload: dict[str, Any]) -> None:
        raise RuntimeError("boom in order_created")


class HangingPlugin(Plugin):
    manifest = Manifest(name="hanger", version="1.0", feature="coupons", checkout_timeout_seconds=0.3, event_timeout_seconds=0.3)

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        HANG_RELEASE.wait(30)
        # too late: the host has revoked the session by now
        from sqlalchemy import text

        session.execute(text("UPDATE orders SET total_cents = 0"))
        return {"discount_cents": 10_000}

    def on_heartbeat(self, payload: dict[str, Any]) -> None:
        HANG_RELEASE.wait(30)


class GreedyPlugin(Plugin):
    """Asks for more discount than the HQ price floor allows."""

    manifest = Manifest(name="greedy", version="1.0", feature="coupons")

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"discount_cents": ctx["unit_price_cents"] * ctx["quantity"], "extras": {"note": "all free"}}


class DatedPlugin(Plugin):
    """An operator action answering what a database hands back: datetimes, decimals, UUIDs."""

    manifest = Manifest(name="dated", version="1.0", feature="coupons")

    def admin_actions(self) -> dict[str, AdminAction]:
        return {"show": AdminAction("Show dated rows", NoArguments, _dated_rows)}


class NoArguments(BaseModel):
    pass


def _dated_rows(session: Any, args: BaseModel) -> list[dict[str, Any]]:
    when = datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc)
    return [{"when": when, "day": when.date(), "balance": Decimal("12.50"), "id": UUID(int=7), "tags": (when,)}]


def nonsense_plugin(answer: Any) -> type[Plugin]:
    """A plugin answering `answer` as its discount (not always a non-negative int)."""

    class NonsensePlugin(Plugin):
        manifest = Manifest(name="nonsense", version="1.0", feature="coupons")

        def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
            return {"discount_cents": answer}

    return NonsensePlugin


class WriteThenRaisePlugin(Plugin):
    """Writes to the site database, then fails: its write must not survive."""

    manifest = Manifest(name="scribbler", version="1.0", feature="coupons")

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        from sqlalchemy import text

        session.execute(text("INSERT INTO audit_log (at, actor, action, detail) VALUES (CURRENT_TIMESTAMP, 'plugin', 'scribble', '{}')"))
        raise ValueError("after writing")


class CommitterPlugin(Plugin):
    """Tries to commit the buyer's transaction itself."""

    manifest = Manifest(name="committer", version="1.0", feature="coupons")

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        session.commit()
        return {"discount_cents": 1}


class FixedDiscountPlugin(Plugin):
    manifest = Manifest(name="fixed-off", version="1.0", feature="coupons")

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"discount_cents": 100, "extras": {"why": "loyal"}}


class StackPlugin(Plugin):
    class Settings(BaseModel):
        token: SecretStr = SecretStr("t0ken")

    manifest = Manifest(name="stacker", version="1.0", feature="coupons", settings=Settings)

    def stack_fragment(self) -> dict[str, Any]:
        return {
            "services": {"stacker-worker": {"image": "kitctl/base:bookworm", "command": ["sleep", "infinity"]}},
            "volumes": {"stacker-data": {}},
            "env": {"storefront": {"PLUGIN_STACKER_MODE": "on"}},
        }


class BadStackPlugin(Plugin):
    manifest = Manifest(name="bad-stacker", version="1.0", feature="coupons")

    def stack_fragment(self) -> dict[str, Any]:
        return {"services": {"db": {"image": "evil"}}}


class FutureKitPlugin(Plugin):
    manifest = Manifest(name="future", version="9.0", feature="coupons", kit_versions=">=9.0")


def source(cls: type) -> Source:
    return Source(cls.manifest.name, "test", f"{cls.__module__}:{cls.__name__}", lambda: cls)


def failing_import_source() -> Source:
    def load() -> Any:
        raise ImportError("No module named 'missing_dependency'")

    return Source("broken", "test", "broken_plugin:Plugin", load)


def not_a_plugin_source() -> Source:
    return Source("stranger", "test", "builtins:object", lambda: object)


class BadSQLPlugin(Plugin):
    """Sends SQL the database rejects: on PostgreSQL that aborts the transaction unless rolled back to a savepoint."""

    manifest = Manifest(name="bad-sql", version="1.0", feature="coupons")

    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        from sqlalchemy import text

        session.execute(text("SELECT no_such_column FROM no_such_table"))
        return {"discount_cents": 1}


def hanging_import_source() -> Source:
    def load() -> Any:
        HANG_RELEASE.wait(30)
        raise ImportError("released")

    return Source("slow-import", "test", "slow_import:Plugin", load)
