"""Helpers for storefront tests and the benchmark: seed the site database, run the real server.

The seeding functions stand in for the agent at the database boundary only:
they write the rows the agent would write (catalog, site state, decisions).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import contextlib
import httpx

from sitedb.engine import make_engine, session_factory
from sitedb.migrate import upgrade
from sitedb.models import CatalogItem, Order, PriceRule, SiteState
from sitedb.sealing import seal
from hq.testing import free_port  # noqa: F401 (one picker for every test; imported from here too)

ROOT = Path(__file__).resolve().parents[2]

CATALOG = [
    # sku, name, category, face, hq price, kind, pattern, min, max, stock
    ("G-QQ-100", "腾讯Q币 100元", "game", 10000, 9650, "card_key", None, 1, 5, 120),
    ("G-WOW-30", "魔兽世界 30天点卡", "game", 7500, 7100, "card_key", None, 1, 3, 40),
    ("G-NET-50", "网易一卡通 50元", "game", 5000, 4820, "card_key", None, 1, 10, None),
    ("G-STEAM-200", "Steam 钱包充值卡 200元", "game", 20000, 19400, "card_key", None, 1, 2, 8),
    ("P-CM-50", "中国移动 话费直充 50元", "phone", 5000, 4960, "direct_topup", r"1[3-9]\d{9}", 1, 1, None),
    ("P-CU-100", "中国联通 话费直充 100元", "phone", 10000, 9930, "direct_topup", r"1[3-9]\d{9}", 1, 1, None),
    ("M-IQY-VIP", "爱奇艺 黄金会员 月卡", "membership", 2500, 1980, "card_key", None, 1, 12, 500),
    ("M-BILI-Y", "哔哩哔哩 大会员 年卡", "membership", 14800, 12800, "card_key", None, 1, 1, 0),
]


def seed(url: str, *, status: str = "active", markup_bps: int = 800, reason: str | None = None) -> None:
    """Migrate and write a catalog and the licence state, as the agent would after its first sync."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as s:
            s.merge(PriceRule(id=1, scope="all", target=None, kind="percent", value=markup_bps, rounding="none", enabled=True))
            for sku, name, cat, face, hq, kind, pattern, lo, hi, stock in CATALOG:
                s.merge(CatalogItem(
                    sku=sku, name=name, category=cat, face_value_cents=face, hq_price_cents=hq, price_rule_id=1,
                    price_cents=(hq * (10_000 + markup_bps) + 5_000) // 10_000, currency="CNY", stock_kind=kind,
                    account_pattern=pattern, min_qty=lo, max_qty=hi, stock=stock, status="active", hq_version=1,
                    content_hash=sku, sync_mark=0))
            s.merge(SiteState(
                id=1, site_id="xingchen", tier="pro", features=["coupons", "notify"], categories=["game", "phone", "membership"],
                revenue_share_bps=1000, licence_expires_at=int(time.time()) + 200 * 86400, licence_status=status,
                status_reason=reason, last_sync_at=datetime.now(timezone.utc), last_heartbeat_at=datetime.now(timezone.utc),
                health={"hq_reachable": True, "outbox_pending": 0, "catalog_items": len(CATALOG)}))
    finally:
        engine.dispose()


def set_licence(url: str, status: str, reason: str | None = None) -> None:
    update_site_state(url, licence_status=status, status_reason=reason)


def update_site_state(url: str, **fields: object) -> None:
    """Change the licence state as the agent would after a heartbeat (e.g. HQ's upgrade: tier and features)."""
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as s:
            state = s.get(SiteState, 1)
            for name, value in fields.items():
                setattr(state, name, value)
    finally:
        engine.dispose()


def record_decision(url: str, order_id: str, site_key: bytes, *, status: str, decision: str,
                    card_keys: list[dict[str, str]] | None = None, public_reason: str | None = None,
                    payment: dict[str, object] | None = None) -> None:
    """What the agent writes back after HQ decides (the test's only access path besides the browser)."""
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as s:
            order = s.get(Order, order_id)
            assert order is not None, order_id
            order.status, order.decision, order.public_reason = status, decision, public_reason
            order.hq_order_id = "HQ-" + order_id
            order.decided_at = datetime.now(timezone.utc)
            if card_keys is not None:
                order.delivery_sealed = seal(site_key, {"card_keys": card_keys})
            if payment is not None:
                order.payment = payment
    finally:
        engine.dispose()


def book_entries(url: str, lines: list[dict[str, object]]) -> None:
    """HQ's ledger entries as the agent copies them (`settlement_entries`): each needs id, posted_at, kind,
    source and the amounts it moves; the others are 0 and net is their sum."""
    from sqlalchemy import insert

    from sitedb.tables import ENTRY_AMOUNTS, settlement_entries

    rows = []
    for line in lines:
        row = {"reference": None, **dict.fromkeys(ENTRY_AMOUNTS, 0), **line}
        row["net_fen"] = sum(int(row[a]) for a in ENTRY_AMOUNTS if a != "net_fen")  # type: ignore[call-overload]
        rows.append(row)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(settlement_entries), rows)
    finally:
        engine.dispose()


def add_statement(url: str, statement_id: int, start: str, end: str, totals: dict[str, int], **fields: object) -> None:
    """A statement HQ issued, as the agent copies it."""
    from datetime import date

    from sqlalchemy import insert

    from sitedb.tables import STATEMENT_TOTALS, settlement_statements

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(settlement_statements).values(
                id=statement_id, cadence="monthly", period_start=date.fromisoformat(start),
                period_end=date.fromisoformat(end), totals={k: totals.get(k, 0) for k in STATEMENT_TOTALS},
                csv_sha256="ab" * 32, issued_at=datetime.now(timezone.utc), **fields))
    finally:
        engine.dispose()


def write_site_files(directory: Path) -> dict[str, str]:
    """site.json, branding, secrets (0600) as `kitctl render` would lay them out; returns the env."""
    directory.mkdir(parents=True, exist_ok=True)
    branding = directory / "branding"
    branding.mkdir(exist_ok=True)
    (branding / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#c8102e"/>'
        '<path d="M32 10l6.5 14.5L54 26l-11.5 10.5L46 52 32 44l-14 8 3.5-15.5L10 26l15.5-1.5z" fill="#f5a623"/></svg>')
    site = {"site_id": "xingchen", "name": "星辰游戏", "domain": "shop.example.cn", "locale": "zh-CN", "currency": "CNY",
            "colours": {"primary": "#c8102e", "accent": "#f5a623", "background": "#f6f7f9", "text": "#1f2329"},
            "contact": "QQ 800-123-456", "logo": "logo.svg"}
    (directory / "site.json").write_text(json.dumps(site, ensure_ascii=False))
    secret = directory / "secret_key"
    secret.write_bytes(os.urandom(32).hex().encode())
    site_key = directory / "site_key"
    site_key.write_text(base64.b64encode(os.urandom(32)).decode())
    for f in (secret, site_key):
        f.chmod(0o600)
    return {"KIT_SITE_CONFIG": str(directory / "site.json"), "KIT_SECRET_KEY_FILE": str(secret),
            "KIT_SITE_KEY_FILE": str(site_key), "KIT_BRANDING_DIR": str(branding)}


@contextlib.contextmanager
def running_storefront(url: str, env_extra: dict[str, str], log_path: Path) -> Iterator[str]:
    """`python -m storefront` on a free loopback port; yields its base URL, stops it after."""
    port = free_port()
    env = {**os.environ, "KIT_METRICS_BIND": f"127.0.0.1:{free_port()}", **env_extra, "KIT_DATABASE_URL": url,
           "KIT_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT), "KIT_LOG_LEVEL": "warning"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "storefront"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"storefront exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("storefront did not become healthy in 30 s")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def versioned_url(name: str) -> str:
    """The URL pages link for a static file: its name with its content's hash (kitcore.assets)."""
    from kitcore.assets import hashed_name

    path = Path(__file__).resolve().parents[2] / "storefront" / "static" / name
    return "/static/" + hashed_name(name, path.read_bytes())
