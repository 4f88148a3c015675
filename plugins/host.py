"""The plugin host: loads licensed, enabled plugins and calls their hooks in isolation.

Callers (storefront, agent, kitctl) use only `PluginHost.load(...)` and the
methods below. Every refusal is a one-line reason in `host.refused`; every
failure inside a plugin is logged, counted in `kitagent_plugin_errors_total`
and costs the caller nothing but that plugin's contribution.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from plugins import checks
from plugins.contract import EVENT_HOOKS, Adjustment, Manifest, Plugin, PluginContext, Where, check_manifest
from plugins.discovery import Source, discover
from plugins.isolation import DeadlineRunner, GuardedSession, HookBusy, HookTimeout

log = logging.getLogger("kit.plugins")
EVENT_QUEUE_SIZE = 1000
IMPORT_TIMEOUT_SECONDS = 15.0  # a plugin whose import hangs is refused, not waited for


@dataclass(frozen=True)
class Installed:
    """An installed plugin as `kitctl plugins list` shows it (loaded or not)."""

    name: str
    version: str
    feature: str
    origin: str
    description: str
    kit_versions: str
    settings: type


class PluginHost:
    """Loaded plugins of one process, and the isolation every call goes through."""

    def __init__(self, where: Where, registry: Any = None) -> None:
        self.where = where
        self.loaded: list[str] = []
        self.refused: dict[str, str] = {}
        self.installed: dict[str, Installed] = {}
        self._plugins: dict[str, Plugin] = {}
        self._runner = DeadlineRunner()
        self._registry = registry
        self._fields: list[tuple[str, dict[str, Any]]] | None = None
        self._events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(EVENT_QUEUE_SIZE)
        self._dispatcher: threading.Thread | None = None
        self._dispatch_lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        features: Iterable[str],
        enabled: Iterable[str] | None = None,
        config_dir: Path | None = None,
        where: Where = "storefront",
        *,
        tier: str | None = None,
        registry: Any = None,
        sources: list[Source] | None = None,
    ) -> "PluginHost":
        """Import every installed plugin, keep those the licence grants and the site enabled.

        `enabled=None` means every licensed plugin except those the site disabled
        in `<config_dir>/plugins.toml`. `sources` replaces discovery (tests).
        """
        from kitcore import __version__
        from plugins.site_config import raw_settings, read_choice

        if where not in ("storefront", "agent", "kitctl"):
            raise ValueError(f"where must be storefront, agent or kitctl, not {where!r}")
        host = cls(where, registry)
        granted = set(features)
        config_dir = Path(config_dir) if config_dir is not None else None
        try:
            choice = read_choice(config_dir)
        except Exception as exc:  # a broken plugins.toml disables plugins, not the shop
            log.error("plugins disabled: %s", exc)
            choice = None
        allowed = None if enabled is None else set(enabled)
        for source in discover() if sources is None else sources:
            plugin_cls = host._import(source)
            if plugin_cls is None:
                continue
            manifest = plugin_cls.manifest
            reason = _refusal(manifest, granted, tier, __version__, allowed, choice)
            if reason:
                host.refused[manifest.name] = reason
                continue
            try:
                settings = manifest.settings.model_validate(raw_settings(config_dir, manifest.name))
            except Exception as exc:
                host.refused[manifest.name] = f"{manifest.name} settings are invalid: {checks.first_error(exc)}"
                host._count(manifest.name, "settings", "invalid")
                continue
            host._start(plugin_cls, settings, config_dir, __version__)
        host.loaded.sort()
        return host

    def _import(self, source: Source) -> type[Plugin] | None:
        """The plugin class of `source`, or None with the reason recorded and counted."""
        try:
            obj = self._runner.call(source.name, "import", source.load, IMPORT_TIMEOUT_SECONDS)
        except BaseException as exc:  # noqa: BLE001 - a plugin's import must never stop the caller
            if isinstance(exc, KeyboardInterrupt):
                raise
            reason = f"{source.name} failed to import: {_describe(exc)}"
            self._fail_load(source.name, "import", reason, kind=_kind(exc, default="import"))
            return None
        try:
            manifest = check_manifest(getattr(obj, "manifest", None))
            if not (isinstance(obj, type) and issubclass(obj, Plugin)):
                raise ValueError("is not a subclass of plugins.contract.Plugin")
        except ValueError as exc:
            self._fail_load(source.name, "manifest", f"{source.name} is not a valid plugin: {exc}")
            return None
        if manifest.name != source.name:
            self._fail_load(source.name, "manifest", f"{source.name}: entry point name differs from manifest name {manifest.name!r}")
            return None
        if manifest.name in self.installed:
            taken_by = self.installed[manifest.name].origin
            reason = f"{source.name} from {source.origin}: the name is already taken by {taken_by}"
            self._fail_load(f"{source.name}@{source.origin}", "manifest", reason)
            return None
        self.installed[manifest.name] = Installed(
            manifest.name, manifest.version, manifest.feature, source.origin,
            manifest.description, manifest.kit_versions, manifest.settings,
        )
        return obj

    def _start(self, plugin_cls: type[Plugin], settings: Any, config_dir: Path | None, version: str) -> None:
        name = plugin_cls.manifest.name
        context = PluginContext(self.where, version, config_dir, logging.getLogger(f"kit.plugins.{name}"))
        try:
            plugin = self._runner.call(name, "init", lambda: plugin_cls(settings, context), plugin_cls.manifest.event_timeout_seconds)
        except Exception as exc:
            self._fail_load(name, "init", f"{name} failed to start: {_describe(exc)}", kind=_kind(exc))
            return
        self._plugins[name] = plugin
        self.loaded.append(name)

    def _fail_load(self, name: str, hook: str, reason: str, kind: str = "import") -> None:
        log.error("plugin refused: %s", reason)
        self.refused[name] = reason
        self._count(name.split("@")[0], hook, kind)

    # ------------------------------------------------------------------ queries
    def plugin(self, name: str) -> Plugin | None:
        """The loaded plugin called `name` (admin tools), or None."""
        return self._plugins.get(name)

    def checkout_fields(self) -> list[dict[str, Any]]:
        """Extra checkout inputs of every loaded plugin, validated; names unique across plugins."""
        return [dict(f) for _, f in self._field_owners()]

    def _field_owners(self) -> list[tuple[str, dict[str, Any]]]:
        if self._fields is None:
            owners: list[tuple[str, dict[str, Any]]] = []
            taken: set[str] = set()
            for name, plugin in self._hooked("checkout_fields"):
                raw = self._call(name, "checkout_fields", plugin.checkout_fields, plugin.manifest.checkout_timeout_seconds, [])
                for item in raw if isinstance(raw, list) else [raw]:
                    try:
                        field = checks.checkout_field(item)
                    except checks.BadAnswer as exc:
                        self._bad_answer(name, "checkout_fields", exc)
                        continue
                    if field["name"] in taken:
                        self._bad_answer(name, "checkout_fields", checks.BadAnswer(f"field {field['name']} already taken"))
                        continue
                    taken.add(field["name"])
                    owners.append((name, field))
            self._fields = owners
        return self._fields

    def page_lines(self, slot: str, ctx: dict[str, Any]) -> list[tuple[str, str]]:
        """(plugin, line) for a page slot, each plugin within its checkout budget; a failing or malformed
        answer is left out and counted, the page renders without it. An order's `extras` reach each plugin
        as its own extras only."""
        from plugins.contract import PAGE_SLOTS

        wanted = PAGE_SLOTS[slot]
        shown: list[tuple[str, str]] = []
        for name, plugin in self._hooked("page_lines"):
            own = {k: v for k, v in ctx.items() if k in wanted}
            if "extras" in wanted:
                own["extras"] = dict((ctx.get("extras") or {}).get(name) or {})
            raw = self._call(name, "page_lines", lambda p=plugin, c=own: p.page_lines(slot, c),
                             plugin.manifest.checkout_timeout_seconds, [])
            try:
                shown += [(name, line) for line in checks.page_lines(raw)]
            except checks.BadAnswer as exc:
                self._bad_answer(name, "page_lines", exc)
        return shown

    def stack_fragments(self) -> dict[str, dict[str, Any]]:
        """Extra compose services/volumes/env of loaded plugins; a plugin whose fragment clashes is left out."""
        merged: dict[str, dict[str, Any]] = {"services": {}, "volumes": {}, "env": {}}
        for fragment in self.plugin_fragments()[0].values():
            _merge_fragment(merged, fragment)
        return merged

    def plugin_fragments(self) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """({plugin: its checked fragment}, {plugin: one-line reason it was refused}), for render and status.

        Only plugins that add something appear in the first mapping; a plugin
        whose hook fails, answers nonsense or clashes with an earlier plugin is
        in the second (and logged and counted, as every plugin failure is).
        """
        merged: dict[str, dict[str, Any]] = {"services": {}, "volumes": {}, "env": {}}
        fragments: dict[str, dict[str, Any]] = {}
        refused: dict[str, str] = {}
        for name, plugin in self._hooked("stack_fragment"):
            try:
                raw = self._runner.call(name, "stack_fragment", plugin.stack_fragment, plugin.manifest.event_timeout_seconds)
            except Exception as exc:
                self._record_failure(name, "stack_fragment", exc)
                refused[name] = f"plugin {name}: stack_fragment failed ({_describe(exc)})"
                continue
            try:
                fragment = checks.stack_fragment(raw, name)
                _merge_fragment(merged, fragment)
            except checks.BadAnswer as exc:
                self._bad_answer(name, "stack_fragment", exc)
                message = checks.one_line(exc)
                refused[name] = message if message.startswith(f"plugin {name}:") else f"plugin {name}: {message}"
                continue
            if any(fragment.values()):
                fragments[name] = fragment
        return fragments, refused

    # ------------------------------------------------------------------ checkout
    def adjust_checkout(self, session: Any, ctx: dict[str, Any]) -> dict[str, Any]:
        """Discounts, extras and field errors of every plugin for one checkout, inside its transaction.

        The sum of discounts is clamped so the total never drops below
        hq_price_cents * quantity; a plugin that raises, overruns or answers
        nonsense contributes nothing and its database writes are rolled back.
        """
        quantity, unit, floor_unit = _checked_prices(ctx)
        gross = unit * quantity
        allowance = max(0, gross - floor_unit * quantity)
        result = Adjustment()
        fields = ctx.get("fields") or {}
        discounts: dict[str, int] = {}
        failed: list[str] = []
        for name, plugin in self._checkout_participants():
            own = {f["name"]: f for owner, f in self._field_owners() if owner == name}
            values, field_errors = _own_field_values(own, fields)
            if field_errors:
                result.errors.update(field_errors)
                continue
            answer = self._adjust_one(name, plugin, session, {**ctx, "fields": values})
            if answer is None:
                failed.append(name)
                continue
            cents, extras, errors = answer
            if errors:
                result.errors.update({(k if k in own else name): v for k, v in errors.items()})
                continue
            if cents:
                discounts[name] = cents
            if extras:
                result.extras[name] = extras
        wanted = sum(discounts.values())
        result.discount_cents = min(wanted, allowance)
        if discounts:
            result.extras["_discounts"] = discounts
        if wanted > allowance:
            result.extras["_clamped_cents"] = wanted - allowance
        if failed:
            result.extras["_failed"] = failed
        return result.as_dict()

    def _checkout_participants(self) -> list[tuple[str, Plugin]]:
        return self._hooked("adjust_checkout")

    def _adjust_one(self, name: str, plugin: Plugin, session: Any, ctx: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """One plugin's (discount, extras, errors) in a savepoint, or None when it failed (rolled back)."""
        _ensure_outer_transaction(session)
        savepoint = session.begin_nested()
        guarded = GuardedSession(session)
        try:
            raw = self._runner.call(name, "adjust_checkout", lambda: plugin.adjust_checkout(guarded, ctx), plugin.manifest.checkout_timeout_seconds)
            answer = _checked_adjustment(raw)
        except Exception as exc:
            guarded.revoke()
            if savepoint.is_active:
                savepoint.rollback()
            self._record_failure(name, "adjust_checkout", exc)
            return None
        guarded.revoke()
        if answer[2]:
            savepoint.rollback()  # a refused field: nothing the plugin wrote stays
        else:
            savepoint.commit()
        return answer

    # ------------------------------------------------------------------ events
    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """Queue an event for the plugins' hooks; returns at once and never raises."""
        try:
            hook = EVENT_HOOKS.get(event)
            if hook is None:
                log.warning("unknown plugin event %r ignored", event)
                return
            if not self._hooked(hook):
                return
            typed = _typed(event, checks.redact(payload))
            if typed is None:
                self._count("*", event, "invalid")
                return
            self._ensure_dispatcher()
            self._events.put_nowait((event, typed))
        except queue.Full:
            self._count("*", event, "dropped")
            log.error("plugin event queue full: %s dropped", event)
        except Exception as exc:  # noqa: BLE001 - emit must never fail the caller
            log.error("plugin event %s not queued: %s", event, _describe(exc))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until queued events were handled (tests, shutdown); True when the queue drained."""
        done = threading.Event()

        def wait() -> None:
            self._events.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (bounded), then stop the dispatcher."""
        if self._dispatcher is not None:
            self.flush(timeout)
            try:
                self._events.put_nowait(None)
            except queue.Full:
                pass

    def _ensure_dispatcher(self) -> None:
        with self._dispatch_lock:
            if self._dispatcher is None or not self._dispatcher.is_alive():
                self._dispatcher = threading.Thread(target=self._dispatch, name="plugin-events", daemon=True)
                self._dispatcher.start()

    def _dispatch(self) -> None:
        while True:
            item = self._events.get()
            try:
                if item is None:
                    return
                event, payload = item
                hook = EVENT_HOOKS[event]
                for name, plugin in self._hooked(hook):
                    method = getattr(plugin, hook)
                    self._call(name, hook, lambda m=method: m(dict(payload)), plugin.manifest.event_timeout_seconds, None)
            finally:
                self._events.task_done()

    # ------------------------------------------------------------------ admin
    def prepare_database(self, engine: Any) -> None:
        """Let loaded plugins create their own tables (idempotent); failures are isolated."""
        for name, plugin in self._hooked("prepare_database"):
            self._call(name, "prepare_database", lambda p=plugin: p.prepare_database(engine), 30.0, None)

    # ------------------------------------------------------------------ internals
    def _hooked(self, hook: str) -> list[tuple[str, Plugin]]:
        """Loaded plugins that override `hook` (the others cost no thread)."""
        base = getattr(Plugin, hook)
        return [(n, p) for n, p in sorted(self._plugins.items()) if getattr(type(p), hook) is not base]

    def _call(self, name: str, hook: str, fn: Any, timeout: float, fallback: Any) -> Any:
        try:
            return self._runner.call(name, hook, fn, timeout)
        except Exception as exc:
            self._record_failure(name, hook, exc)
            return fallback

    def _record_failure(self, name: str, hook: str, exc: BaseException) -> None:
        kind = _kind(exc)
        log.error("plugin %s %s failed (%s): %s", name, hook, kind, _describe(exc))
        self._count(name, hook, kind)

    def _bad_answer(self, name: str, hook: str, exc: Exception) -> None:
        log.error("plugin %s %s answer ignored: %s", name, hook, exc)
        self._count(name, hook, "invalid")

    def _count(self, plugin: str, hook: str, kind: str) -> None:
        try:
            from plugins.metrics import errors_counter

            errors_counter(self._registry).labels(plugin=plugin, hook=hook, kind=kind).inc()
        except Exception as exc:  # noqa: BLE001 - metrics never break a caller
            log.debug("plugin metric not counted: %s", exc)


# ---------------------------------------------------------------------- helpers
def _typed(event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The payload as its model in plugins/events.py has it (what docs/plugins.md documents), or None with the
    mismatch logged: a service that sends something else has a bug, and no plugin should be built on it."""
    from pydantic import ValidationError

    from plugins.events import EVENTS

    try:
        return EVENTS[event].model_validate(payload).payload()
    except ValidationError as exc:
        log.error("plugin event %s not delivered: its payload does not match plugins/events.py: %s", event,
                  checks.first_error(exc))
        return None


def describe_licence(features: set[str], tier: str | None) -> str:
    """'this licence is pro' (inferred from the features when the tier is not given)."""
    from kitcore.licence.tiers import TIERS

    if tier is None:
        fitting = [t.name for t in TIERS.values() if set(t.features) <= features]
        tier = fitting[-1] if fitting else None
    return f"this licence is {tier}" if tier else "this licence does not grant it"


def licence_refusal(manifest: Manifest, features: set[str], tier: str | None) -> str | None:
    """Why the licence does not allow `manifest`, in one line; None when it does.

    A licence HQ issued with its own feature list may lack a feature its tier usually carries: then the
    line says so, rather than naming the tier the licence already is."""
    from kitcore.licence.tiers import TIERS, lowest_tier_with

    if manifest.feature in features:
        return None
    lowest = lowest_tier_with(manifest.feature)
    wants = f"{manifest.name} needs feature {manifest.feature!r}"
    if lowest is None:
        return f"{wants}, which no tier includes: HQ grants it licence by licence; this licence does not carry it"
    names = list(TIERS)
    if tier in names and names.index(tier) >= names.index(lowest):
        return f"{wants}; this {tier} licence was issued without it (ask HQ to add it)"
    return f"{wants} (tier {lowest} or higher); {describe_licence(features, tier)}"


def _refusal(manifest: Manifest, features: set[str], tier: str | None, kit_version: str, allowed: set[str] | None, choice: Any) -> str | None:
    from plugins.contract import version_in_range

    if not version_in_range(kit_version, manifest.kit_versions):
        return f"{manifest.name} {manifest.version} supports kit {manifest.kit_versions}; this kit is {kit_version}"
    licence = licence_refusal(manifest, features, tier)
    if licence:
        return licence
    if choice is None:
        return f"{manifest.name} is off: plugins.toml could not be read"
    if allowed is not None and manifest.name not in allowed:
        return f"{manifest.name} is not enabled here"
    if allowed is None and manifest.name in choice.disabled:
        return f"{manifest.name} is disabled by the site (kitctl plugins enable {manifest.name})"
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {checks.one_line(exc)}" if str(exc) else type(exc).__name__


def _kind(exc: BaseException, default: str = "error") -> str:
    """The metric's `kind` label for a failure."""
    if isinstance(exc, HookTimeout):
        return "timeout"
    if isinstance(exc, HookBusy):
        return "busy"
    if isinstance(exc, checks.BadAnswer):
        return "invalid"
    return default


def _checked_prices(ctx: dict[str, Any]) -> tuple[int, int, int]:
    """quantity, unit price and HQ price from the caller's context (a caller bug raises ValueError)."""
    values = []
    for key in ("quantity", "unit_price_cents", "hq_price_cents"):
        value = ctx.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"checkout context {key} must be a non-negative int")
        values.append(value)
    return values[0], values[1], values[2]


def _own_field_values(own: dict[str, dict[str, Any]], submitted: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """This plugin's field values (stripped) and the host's own errors for them (required, length)."""
    values, errors = {}, {}
    for name, spec in own.items():
        raw = submitted.get(name)
        value = "" if raw is None else str(raw).strip()
        if spec["required"] and not value:
            errors[name] = f"{spec['label']} is required"
        elif len(value) > spec["max_length"]:
            errors[name] = f"{spec['label']} must be at most {spec['max_length']} characters"
        else:
            values[name] = value
    return values, errors


def _checked_adjustment(raw: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    if raw is None:
        return 0, {}, {}
    if not isinstance(raw, dict):
        raise checks.BadAnswer("adjust_checkout must return a dict")
    cents = checks.discount(0 if raw.get("discount_cents") is None else raw["discount_cents"])
    extras = checks.plain_data(raw.get("extras") or {}, "extras")
    errors = raw.get("errors") or {}
    if not isinstance(extras, dict) or not isinstance(errors, dict):
        raise checks.BadAnswer("extras and errors must be dicts")
    return cents, extras, {str(k): checks.one_line(v) for k, v in errors.items()}


def _merge_fragment(merged: dict[str, dict[str, Any]], fragment: dict[str, dict[str, Any]]) -> None:
    """Add one plugin's fragment, refusing (whole) any clash with what is already there."""
    for key in ("services", "volumes"):
        clash = set(merged[key]) & set(fragment[key])
        if clash:
            raise checks.BadAnswer(f"{key} {', '.join(sorted(clash))} already defined by another plugin")
    for service, variables in fragment["env"].items():
        clash = set(merged["env"].get(service, {})) & set(variables)
        if clash:
            raise checks.BadAnswer(f"env {service}.{', '.join(sorted(clash))} already set by another plugin")
    for key in ("services", "volumes"):
        merged[key].update(fragment[key])
    for service, variables in fragment["env"].items():
        merged["env"].setdefault(service, {}).update(variables)


def _ensure_outer_transaction(session: Any) -> None:
    """On SQLite (pysqlite), make sure a real BEGIN is open so a SAVEPOINT is nested, not a commit.

    pysqlite opens its transaction lazily before the first write; a SAVEPOINT
    issued before that would start (and RELEASE would commit) a transaction of
    its own, breaking "the coupon is counted with the order or not at all".
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    if raw is not None and not raw.in_transaction:
        raw.execute("BEGIN")
