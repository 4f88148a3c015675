"""Shared pieces of the agent tests: a site directory, storefront-like order writes, the agent process."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from sitedb.buyer import Buyer, BuyerBox
from sitedb.models import Order

if TYPE_CHECKING:
    from agent.settings import AgentSettings

# One random site key per test process: every site directory made here gets it, so order rows
# written by `write_orders` open in whichever site's agent reads them.
SITE_KEY = secrets.token_bytes(32)
ROOT = Path(__file__).resolve().parents[2]
OPEN_RULES = {  # risk rules that approve a steady stream of test orders
    "velocity": [],
    "site_daily": {"max_orders": 1_000_000, "max_amount_cents": 10**12},
    "new_site": {"days": 0, "max_orders_per_day": 1_000_000, "max_amount_cents_per_order": 10**11},
    "foreign_region_action": None,
    "limits": {"review_amount_cents": 10**11, "reject_amount_cents": 10**12,
               "review_quantity": 10000, "reject_quantity": 10000},
}


@dataclass
class SiteDir:
    """The files a rendered site gives the agent (licence, pinned keys, site key, site.json)."""

    path: Path
    site_id: str
    db_url: str
    hq_url: str
    licence_file: Path
    keys_file: Path
    site_key_file: Path
    site_config: Path
    site_key: bytes
    metrics_port: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: Any) -> dict[str, str]:
        env = {
            "KIT_DATABASE_URL": self.db_url,
            "KIT_LICENCE_FILE": str(self.licence_file),
            "KIT_HQ_KEYS_FILE": str(self.keys_file),
            "KIT_HQ_URL": self.hq_url,
            "KIT_SITE_KEY_FILE": str(self.site_key_file),
            "KIT_SITE_CONFIG": str(self.site_config),
            "KIT_METRICS_PORT": str(self.metrics_port),
            "KIT_METRICS_BIND": "127.0.0.1",
            "KIT_HEARTBEAT_INTERVAL": "1",
            "KIT_SYNC_INTERVAL": "1",
            "KIT_MIN_INTERVAL": "0.2",
            "KIT_FORWARD_IDLE": "0.1",
            "KIT_BACKOFF_BASE": "0.1",
            "KIT_BACKOFF_CAP": "1",
            "KIT_REVIEW_POLL": "0.3",
            "KIT_SETTLEMENT_INTERVAL": "0.3",
            "KIT_STATS_INTERVAL": "0.5",
            "KIT_HTTP_TIMEOUT": "5",
            **self.extra_env,
        }
        env.update({f"KIT_{k.upper()}": str(v) for k, v in overrides.items()})
        return env

    def settings(self, **overrides: Any) -> AgentSettings:
        from agent.settings import AgentSettings

        return AgentSettings(_env_file=None, **{k[4:].lower(): v for k, v in self.env(**overrides).items()})


def make_site_dir(tmp_path: Path, hq: Any, db_url: str, site_id: str = "xingchen",
                  categories: list[str] | None = None, tier: str = "pro", hq_url: str | None = None) -> SiteDir:
    d = tmp_path / f"site-{site_id}"
    d.mkdir(parents=True, exist_ok=True)
    token = hq.issue_licence(site_id, tier=tier, categories=categories or ["game", "phone"])
    key = SITE_KEY
    files = {
        "licence": (d / "licence.jwt", token),
        "keys": (d / "hq-keys.json", json.dumps(hq.jwks)),
        "site_key": (d / "site.key", base64.b64encode(key).decode()),
        "site": (d / "site.json", json.dumps({"site_id": site_id, "name": "星辰游戏", "currency": "CNY"})),
    }
    for path, text in files.values():
        path.write_text(text)
        os.chmod(path, 0o600)
    return SiteDir(d, site_id, db_url, hq_url or hq.url, files["licence"][0], files["keys"][0],
                   files["site_key"][0], files["site"][0], key)


def migrated_engine(url: str) -> Engine:
    """The site database as the storefront leaves it: migrated, ready for checkouts."""
    from sitedb.engine import make_engine
    from sitedb.migrate import upgrade

    upgrade(url)
    return make_engine(url)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'site.sqlite3'}"


def write_orders(engine: Engine, count: int, sku: str, unit_price_cents: int = 10000, prefix: str = "o",
                 contact: str = "buyer@example.cn", account: str | None = None) -> list[str]:
    """Checkout as the storefront does it: order rows `pending` in one transaction, buyer data sealed."""
    ids = []
    buyers = BuyerBox(SITE_KEY)
    now = datetime.now(timezone.utc)
    with Session(engine) as session, session.begin():
        for _ in range(count):
            oid = f"{prefix}{uuid.uuid4().hex[:20]}"
            ids.append(oid)
            session.add(Order(id=oid, sku=sku, item_name=sku, category="game", quantity=1,
                              unit_price_cents=unit_price_cents, discount_cents=0, total_cents=unit_price_cents,
                              hq_price_cents=unit_price_cents, currency="CNY",
                              buyer_sealed=buyers.seal(oid, Buyer(contact, account, "127.0.0.1")),
                              buyer_contact_index=buyers.contact_index(contact), buyer_region="CN",
                              password_hash="x", extras={}, status="pending", reasons=[], attempts=0,
                              next_attempt_at=now, created_at=now, updated_at=now))
    return ids


def order_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return dict(session.execute(select(Order.status, func.count()).group_by(Order.status)).all())


def hq_order_counts(hq: Any, site_id: str) -> tuple[int, int]:
    """(orders HQ holds for the site, distinct site order ids among them)."""
    from hq.models import Order as HQOrder

    with hq.service.session() as s:
        total = s.scalar(select(func.count()).select_from(HQOrder).where(HQOrder.site_id == site_id))
        distinct = s.scalar(select(func.count(func.distinct(HQOrder.order_id)))
                            .where(HQOrder.site_id == site_id))
    return int(total), int(distinct)


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class AgentProcess:
    """`python -m agent` as a real process, as the container runs it."""

    def __init__(self, site: SiteDir, log_path: Path, argv: list[str] | None = None, **overrides: Any) -> None:
        from tests.support.postgres import free_port

        self.site = site
        self.port = free_port()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **site.env(metrics_port=self.port, **overrides)}
        self.log_path = log_path
        self.argv = argv or [sys.executable, "-m", "agent"]  # another argv: `python -m agent` inside a harness
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_ready: bool = True) -> "AgentProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=log)
        log.close()
        if wait_ready:  # a start (its migration in a child process included) took over 30 s on a loaded host
            wait_until(self.ready, 90, what="agent /readyz")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("agent did not stop within its SIGTERM budget")
        return self.proc.returncode

    def metrics_text(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return sample.value
    return None


def shop_client(directory: Path, site: Any) -> Any:
    """The storefront (in-process TestClient) on the agent's database, sealing with the same site key."""
    from starlette.testclient import TestClient

    from storefront.app import create_app
    from storefront.settings import StorefrontSettings
    from tests.storefront.support import write_site_files

    env = write_site_files(directory)
    app = create_app(StorefrontSettings(database_url=site.db_url, site_config=env["KIT_SITE_CONFIG"],
                                        secret_key_file=env["KIT_SECRET_KEY_FILE"], site_key_file=str(site.site_key_file),
                                        branding_dir=env["KIT_BRANDING_DIR"], state_cache_seconds=0))
    return TestClient(app, base_url="http://testserver", follow_redirects=False)
