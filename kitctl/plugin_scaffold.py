"""`kitctl plugins new NAME`: a plugin package a third party can build, test and ship as it is.

The package shows every part a plugin usually needs, working: its entry point, a page line that depends
on the product's price (in the page's locale), an event handler that writes the plugin's own table, one
setting, and tests written with the kit's test kit (`plugins.testing`, in kitctl's wheel). Its feature is
its own name, to be registered at HQ (`kitctl hq features register NAME`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from kitcore.errors import InvalidInput

PYPROJECT = '''\
# A kitctl plugin, packaged on its own. Build the wheel with `python -m pip wheel --no-deps -w dist .`
# and give it to `kitctl images build --plugin-wheel dist/` to put it into the storefront and agent images.
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
description = "{name}: a kitctl plugin"
requires-python = ">=3.11"
dependencies = ["kitctl>=0.1,<2"]

# The line that makes it a kitctl plugin: NAME = "module:PluginClass" (NAME == the manifest's name).
[project.entry-points."kitctl.plugins"]
{name} = "{module}:{cls}"

[tool.hatch.build.targets.wheel]
packages = ["{module}"]
'''

PLUGIN = '''\
"""{name}: a line on the product page (points the price earns) and points credited when an order is delivered."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from plugins.contract import Manifest, Plugin

metadata = MetaData()
# the plugin's own table: prefixed plugin_<name>_, created by prepare_database (idempotent)
credits = Table(
    "{table}", metadata,
    Column("order_id", String(64), primary_key=True),
    Column("points", Integer, nullable=False),
)

LINES = {{"en": "Earn {{points}} points with this purchase", "zh-CN": "购买可得 {{points}} 积分"}}


class Settings(BaseModel):
    """Set with `kitctl plugins config {name} points_per_yuan=2`."""

    model_config = ConfigDict(extra="forbid")

    points_per_yuan: int = Field(default=1, ge=0, le=1000)


class {cls}(Plugin):
    manifest = Manifest(
        name="{name}",
        version="0.1.0",
        feature="{name}",  # registered at HQ: `kitctl hq features register {name} --description … --vendor …`
        kit_versions=">=0.1,<2",
        settings=Settings,
        description="Points per yuan: shown on the product page, credited on delivery.",
        api_version=2,  # page_lines needs plugin API 2
    )

    engine: Any = None

    def points(self, cents: int) -> int:
        """Whole yuan times the configured rate."""
        return cents // 100 * self.settings.points_per_yuan

    def page_lines(self, slot: str, ctx: dict[str, Any]) -> list[str]:
        if slot != "product":
            return []
        text = LINES.get(ctx["locale"], LINES["en"])
        return [text.format(points=self.points(ctx["price_cents"]))]

    def prepare_database(self, engine: Any) -> None:
        metadata.create_all(engine, checkfirst=True)
        self.engine = engine  # the site database: event hooks write through it

    def on_order_decided(self, payload: dict[str, Any]) -> None:
        if payload["status"] != "delivered" or self.engine is None:
            return
        with self.engine.begin() as connection:
            known = select(credits.c.order_id).where(credits.c.order_id == payload["order_id"])
            if connection.execute(known).first() is None:  # an event may come twice: credit once
                connection.execute(insert(credits).values(order_id=payload["order_id"],
                                                          points=self.points(payload["total_cents"])))
'''

TESTS = '''\
"""Tests of {name} with the kit's test kit (plugins.testing): no kitctl repository needed."""

from __future__ import annotations

from sqlalchemy import select

from plugins import testing
from {module} import {cls}, credits


def test_the_product_page_line_follows_the_price_and_the_setting(tmp_path):
    host = testing.load({cls}, settings={{"points_per_yuan": 2}}, config_dir=tmp_path)
    assert host.page_lines("product", testing.product_context(price_cents=1999)) == [
        ("{name}", "Earn 38 points with this purchase")]
    assert host.page_lines("product", testing.product_context("zh-CN", price_cents=500)) == [
        ("{name}", "购买可得 10 积分")]


def test_a_delivered_order_is_credited_once_in_the_plugins_own_table(tmp_path):
    host = testing.load({cls}, config_dir=tmp_path)
    engine = testing.shop(tmp_path, host)
    testing.deliver(host, "order_decided", order_id="o-1", status="delivered", total_cents=2500)
    testing.deliver(host, "order_decided", order_id="o-1", status="delivered", total_cents=2500)
    testing.deliver(host, "order_decided", order_id="o-2", status="rejected", total_cents=900)
    with engine.connect() as connection:
        assert connection.execute(select(credits.c.order_id, credits.c.points)).all() == [("o-1", 25)]


def test_a_licence_without_the_feature_does_not_load_it():
    assert "needs feature '{name}'" in testing.refusal({cls}, features=["storefront"])
'''

README = '''\
# {dist}

A kitctl plugin scaffolded by `kitctl plugins new {name}`.

    python -m pytest tests                              # with kitctl installed: its test kit is plugins.testing
    python -m pip wheel --no-deps -w dist .             # the wheel
    kitctl hq features register {name} --description "Points per yuan" --vendor "You"   # at HQ, once
    kitctl images build --plugin-wheel dist/            # into the storefront and agent images
'''


def package_names(name: str) -> dict[str, str]:
    """The names the package derives from the plugin's: distribution, module, class, table."""
    under = name.replace("-", "_")
    return {"name": name, "dist": f"kitctl-{name}", "module": f"kitctl_{under}",
            "cls": "".join(part.capitalize() for part in name.split("-")) + "Plugin",
            "table": f"plugin_{under}_credits"}


def checked_name(name: str) -> str:
    """`name` when it can be a new plugin's; InvalidInput in one line otherwise."""
    from plugins.contract import NAME_RE
    from plugins.discovery import BUILTINS

    if not NAME_RE.match(name):
        raise InvalidInput(f"plugin name {name!r} must be lowercase letters, digits and '-' (2-40, a letter first)")
    if name in BUILTINS:
        raise InvalidInput(f"plugin name {name!r} is a built-in plugin's; choose another")
    return name


def new_plugin(name: str, parent: Path) -> Path:
    """Write the package `kitctl-NAME` under `parent`; nothing is written when it is refused."""
    names = package_names(checked_name(name))
    parent = Path(parent)
    if not parent.is_dir():
        raise InvalidInput(f"directory {parent} does not exist")
    target = parent / names["dist"]
    if target.exists():
        raise InvalidInput(f"{target} already exists; choose another directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{names['dist']}.", dir=parent))
    try:
        files = {"pyproject.toml": PYPROJECT, "README.md": README, f"{names['module']}/__init__.py": PLUGIN,
                 "tests/test_plugin.py": TESTS}
        for relative, template in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template.format(**names), encoding="utf-8")
        os.chmod(staging, 0o755)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
