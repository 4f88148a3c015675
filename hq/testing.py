"""Start a real HQ for tests of other parts (agent, storefront, end-to-end).

    from hq.testing import running_hq

    with running_hq(tmp_path) as hq:
        hq.seed_item("game-100", category="game", price_cents=9500)
        hq.seed_card_keys("game-100", 5)
        token = hq.issue_licence("xingchen", categories=["game"])
        httpx.post(f"{hq.url}/v1/heartbeat", headers={"Authorization": f"Bearer {token}"}, json=...)

uvicorn serves the app in a background thread on a free loopback port (or
`host`/`port` given, e.g. host="0.0.0.0" so containers can reach it).
"""

from __future__ import annotations

import json
import secrets
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from hq.service import HQ
from hq.settings import HQSettings


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now, for a server started a moment later.

    Picked at random below the kernel's ephemeral range: `bind(0)` hands out ports from the range
    outgoing connections take theirs from, so a busy run (test workers side by side, a demo beside
    them) could see the port taken by some client before the server bound it.
    """
    import random

    low = _ephemeral_low()
    for _ in range(200) if low > 20001 else ():
        port = random.randint(20000, low - 1)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


@dataclass
class RunningHQ:
    """A served HQ: its URL, state directory, pinned-keys file and an operator token."""

    url: str
    hq_dir: Path
    keys_path: Path
    operator_token: str
    service: HQ
    app: Any = None  # the ASGI app served (its state: the push hub)
    _keys: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def jwks(self) -> dict[str, Any]:
        return self.service.keys.jwks()

    def revoke(self, site: str, reason: str = "revoked in a test") -> None:
        from hq import licences

        licences.revoke(self.service, "test", site, reason)

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_token}"}

    def metrics_headers(self) -> dict[str, str]:
        """What Prometheus sends to HQ's /metrics (the token HQ made in its directory)."""
        token = (self.hq_dir / "metrics-token").read_text(encoding="utf-8").strip()
        return {"Authorization": f"Bearer {token}"}

    def seed_item(self, sku: str, category: str = "game", name: str | None = None, face_value_cents: int = 10000,
                  price_cents: int = 9500, stock_kind: str = "card_key", account_pattern: str | None = None,
                  min_qty: int = 1, max_qty: int = 10, status: str = "active") -> dict[str, Any]:
        """Create or update a catalog item directly in HQ's database."""
        from hq import catalog

        spec = catalog.ItemSpec(name=name or sku, category=category, face_value_cents=face_value_cents,
                                price_cents=price_cents, stock_kind=stock_kind, account_pattern=account_pattern,
                                min_qty=min_qty, max_qty=max_qty, status=status)  # type: ignore[arg-type]
        return catalog.upsert(self.service, "test", sku, spec)

    def seed_card_keys(self, sku: str, count: int) -> list[dict[str, str]]:
        """Import `count` fresh card keys for `sku`; returns them ({serial, secret}) for assertions."""
        from hq import inventory

        keys = [{"serial": f"{sku}-{secrets.token_hex(6)}", "secret": secrets.token_urlsafe(12)} for _ in range(count)]
        csv_text = "sku,serial,secret\n" + "".join(f"{sku},{k['serial']},{k['secret']}\n" for k in keys)
        inventory.import_csv(self.service, "test", csv_text)
        return keys

    def issue_licence(self, site: str, tier: str = "pro", categories: list[str] | None = None, days: int = 365,
                      regions: list[str] | None = None) -> str:
        """A licence token for `site` recorded in HQ (so the site endpoints accept it)."""
        from hq import licences

        return str(licences.issue(self.service, "test", site, tier, categories or ["game"], days,
                                  regions=regions)["token"])

    def set_rules(self, rules: dict[str, Any]) -> None:
        """Replace the risk rules (the same JSON operators edit)."""
        from hq.risk import parse_rules

        self.service.rules.save(parse_rules(rules))


SEED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0")
SEED_TIERS = ("basic", "pro", "flagship")


def seed_fleet(service: HQ, count: int, prefix: str = "site") -> None:
    """`count` licensed sites in one multi-row INSERT per table (10,000-site tests and benchmarks).

    Site i: `<prefix>-<i:05>`, licensee `Licensee <i % 500>`, domain `shop<i>.example<i % 50>.cn`;
    suspended when i % 10 == 3, revoked when i % 10 == 7, expired when i % 20 == 19 (if active);
    tier and version cycle through SEED_TIERS / SEED_VERSIONS; ring i % 4, none when i % 5 == 0;
    every 100th site (i % 100 == 50) is a day silent, with its firing `silent` alert. Each site carries its
    licence's expiry (`licence_expires_at`) itself, so the licence rows' trigger (migration 0037) rewrites none.
    """
    from datetime import timedelta

    from sqlalchemy import insert

    from hq.clock import utcnow
    from hq.models import FleetAlert, Licence, Site

    now = utcnow()
    sites, lics, alerts = [], [], []
    for i in range(count):
        site, jti = f"{prefix}-{i:05d}", f"seed-{prefix}-{i:05d}"
        expires = now + timedelta(days=-1 if i % 20 == 19 else 335)
        status = "suspended" if i % 10 == 3 else "revoked" if i % 10 == 7 else "active"
        sites.append({"id": site, "created_at": now, "status": status, "current_jti": jti,
                      "status_reason": None if status == "active" else f"seeded {status}", "command_seq": 0,
                      "applied_seq": 0, "last_heartbeat_at": now - timedelta(seconds=86400 if i % 100 == 50 else i % 30),
                      "version": SEED_VERSIONS[i % 3], "health": {"db": "ok"}, "settlement_cadence": "monthly",
                      "licensee": f"Licensee {i % 500}", "domain": f"shop{i}.example{i % 50}.cn",
                      "ring": None if i % 5 == 0 else i % 4, "licence_expires_at": expires})
        lics.append({"jti": jti, "site_id": site, "tier": SEED_TIERS[i % 3], "features": [], "categories": ["game"],
                     "regions": ["CN"], "revenue_share_bps": 0, "issued_at": now - timedelta(days=30),
                     "expires_at": expires, "issued_by": "seed",
                     "token_sha256": "0" * 64})
        if i % 100 == 50:
            alerts.append({"site_id": site, "kind": "silent", "state": "firing", "severity": "critical",
                           "summary": "no heartbeat for 1 days", "opened_at": now, "last_seen_at": now})
    with service.session() as s:
        s.execute(insert(Site), sites)
        s.execute(insert(Licence), lics)
        if alerts:
            s.execute(insert(FleetAlert), alerts)


_TEMPLATE: dict[str, Path] = {}


def _copy_migrated_sqlite(hq_dir: Path) -> None:
    """Start from an already migrated SQLite file: migrating each test's database is slow."""
    import shutil
    import tempfile

    from hq import db

    if "sqlite" not in _TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="hq-template-")) / "hq.sqlite3"
        db.upgrade(f"sqlite:///{template}")
        _TEMPLATE["sqlite"] = template
    hq_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = hq_dir / "hq.sqlite3"
    if not target.exists():
        shutil.copyfile(_TEMPLATE["sqlite"], target)


@contextmanager
def running_hq(tmp_path: Path, database_url: str | None = None, host: str = "127.0.0.1", port: int | None = None,
               operator: str = "tester", **settings: Any) -> Iterator[RunningHQ]:
    """Serve a fresh HQ from `tmp_path/hq` until the block ends (again on the same state: another `operator`)."""
    from hq import operators
    from hq.app import create_app
    from kitcore.serving import served_in_thread

    port = port or free_port(host)
    hq_dir = Path(tmp_path) / "hq"
    if database_url is None:
        _copy_migrated_sqlite(hq_dir)
    # where licences say HQ is: this server, unless the test names another (e.g. HQ's container, started later)
    public = settings.pop("public_url", None) or f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    settings.setdefault("apply_burst", 10_000)  # tests apply many times from one address; the limit's test sets it
    conf = HQSettings(dir=hq_dir, database_url=database_url, bind=f"{host}:{port}", public_url=public, **settings)
    service = HQ.open(conf)
    token = operators.add(service, operator)
    keys_path = hq_dir / "hq-keys.json"
    keys_path.write_text(json.dumps(service.keys.jwks()))
    app = create_app(conf, hq=service)
    try:
        with served_in_thread(app, host, port, "HQ test server", lifespan="on"):
            try:
                yield RunningHQ(url=f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}", hq_dir=hq_dir, keys_path=keys_path, operator_token=token,
                                service=service, app=app)
            finally:
                if app.state.push is not None:  # long-polls answer now rather than hold the stop (hq.push)
                    app.state.push.close_threadsafe()
    finally:
        service.close()
