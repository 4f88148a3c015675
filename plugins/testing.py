"""A test kit for plugin authors, shipped in the kit's wheel: test a plugin without the kit's repository.

Everything here drives the real `PluginHost` (the same licence check, settings validation, isolation
and typed events the storefront and agent use), with a small SQLite "shop" in place of the site's
PostgreSQL database:

    host = load(MyPlugin, features=["my-feature"], settings={"points_per_yuan": 2}, config_dir=tmp_path)
    engine = shop(tmp_path, host)             # the site's tables, one product, your plugin's tables
    host.page_lines("product", product_context(price_cents=1999))
    deliver(host, "order_decided", status="delivered", total_cents=1999)

No pytest import: these are plain functions, usable from any test runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugins.contract import Plugin
from plugins.discovery import Source

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from plugins.host import PluginHost
    from plugins.contract import Where

PRODUCT = {"sku": "GAME-100", "name": "Game card 100", "category": "game", "price_cents": 1999, "currency": "CNY"}

_EVENT_DEFAULTS: dict[str, dict[str, Any]] = {
    "order_created": {"order_id": "ord-test-1", "sku": PRODUCT["sku"], "category": "game", "quantity": 1,
                      "total_cents": PRODUCT["price_cents"], "currency": "CNY",
                      "unit_price_cents": PRODUCT["price_cents"], "discount_cents": 0, "extras": {}},
    "order_decided": {"order_id": "ord-test-1", "sku": PRODUCT["sku"], "category": "game", "quantity": 1,
                      "total_cents": PRODUCT["price_cents"], "currency": "CNY", "status": "delivered",
                      "decision": "approve", "buyer_contact": "buyer@example.com"},
    "catalog_item": {"sku": PRODUCT["sku"], "deleted": False, "category": "game", "status": "active",
                     "price_cents": PRODUCT["price_cents"], "hq_price_cents": 1800},
    "heartbeat": {"interval_seconds": 60.0, "licence_status": "active"},
}


def load(plugin_cls: type[Plugin], features: list[str] | None = None, settings: dict[str, Any] | None = None,
         config_dir: Path | None = None, where: "Where" = "agent", tier: str | None = None) -> "PluginHost":
    """A host that found only `plugin_cls` (as its entry point would), under a licence of `features`
    (default: the plugin's own feature), with `settings` written to `config_dir/plugins.toml` first.

    A refused plugin is an AssertionError carrying the host's one-line reason."""
    from plugins.host import PluginHost

    name = plugin_cls.manifest.name
    if settings is not None:
        if config_dir is None:
            raise ValueError("settings need a config_dir to be written to")
        write_settings(config_dir, name, settings)
    source = Source(name, "plugin under test", f"{plugin_cls.__module__}:{plugin_cls.__qualname__}",
                    lambda: plugin_cls)
    granted = [plugin_cls.manifest.feature] if features is None else features
    host = PluginHost.load(granted, None, config_dir, where, tier=tier, sources=[source])
    if name not in host.loaded:
        raise AssertionError(host.refused.get(name, f"{name} was not loaded"))
    return host


def refusal(plugin_cls: type[Plugin], features: list[str], settings: dict[str, Any] | None = None,
            config_dir: Path | None = None) -> str:
    """The one line the host gives for not loading `plugin_cls` (what `kitctl plugins list` shows)."""
    from plugins.host import PluginHost

    name = plugin_cls.manifest.name
    if settings is not None and config_dir is not None:
        write_settings(config_dir, name, settings)
    source = Source(name, "plugin under test", plugin_cls.__qualname__, lambda: plugin_cls)
    host = PluginHost.load(features, None, config_dir, "agent", sources=[source])
    if name in host.loaded:
        raise AssertionError(f"{name} was loaded")
    return host.refused[name]


def write_settings(config_dir: Path, name: str, values: dict[str, Any]) -> None:
    """Non-secret settings of plugin `name` in `config_dir/plugins.toml`, as `kitctl plugins config` writes them."""
    from plugins.site_config import SiteChoice, read_choice, write_choice

    config_dir.mkdir(parents=True, exist_ok=True)
    current = read_choice(config_dir)
    settings = {**current.settings, name: dict(values)}
    write_choice(config_dir, SiteChoice(list(current.disabled), settings))


def shop(folder: Path, host: "PluginHost | None" = None, products: list[dict[str, Any]] | None = None) -> "Engine":
    """A SQLite site database in `folder` with the site's tables and `products` (default: PRODUCT) in its
    catalog, as the agent would have synced them; then the host's plugins create their own tables."""
    from sitedb.engine import make_engine
    from sitedb.tables import metadata

    engine = make_engine(f"sqlite:///{Path(folder) / 'site.db'}")
    metadata.create_all(engine)
    seed_catalog(engine, products if products is not None else [PRODUCT])
    if host is not None:
        host.prepare_database(engine)
    return engine


def seed_catalog(engine: "Engine", products: list[dict[str, Any]]) -> None:
    """Catalog rows for a local storefront with no agent: sku, name, category, price_cents, currency
    (HQ's price defaults to the selling price)."""
    from sitedb.tables import catalog_items

    rows = []
    for product in products:
        price = int(product["price_cents"])
        rows.append({"sku": product["sku"], "name": product.get("name", product["sku"]),
                     "category": product.get("category", "game"), "face_value_cents": price,
                     "hq_price_cents": int(product.get("hq_price_cents", price)), "price_cents": price,
                     "currency": product.get("currency", "CNY"), "stock_kind": product.get("stock_kind", "card_key"),
                     "hq_version": 1, "content_hash": "0" * 64})
    with engine.begin() as connection:
        connection.execute(catalog_items.insert(), rows)


def product_context(locale: str = "en", **fields: Any) -> dict[str, Any]:
    """What `page_lines("product", ctx)` receives on the product page of PRODUCT (fields override)."""
    return {**PRODUCT, "locale": locale, **fields}


def event(name: str, **fields: Any) -> dict[str, Any]:
    """A payload of event `name` as the services send it (typed by plugins.events), defaults overridden."""
    from plugins.events import EVENTS

    if name not in EVENTS:
        raise ValueError(f"unknown event {name!r}; events: {', '.join(EVENTS)}")
    return EVENTS[name].model_validate({**_EVENT_DEFAULTS[name], **fields}).payload()


def deliver(host: "PluginHost", name: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
    """Emit event `name` through the host and wait until every hook ran; returns the payload sent."""
    payload = event(name, **fields)
    host.emit(name, payload)
    if not host.flush(timeout):
        raise AssertionError(f"{name} was not handled within {timeout} s")
    return payload
