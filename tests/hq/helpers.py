"""Helpers shared by HQ tests (requests a site sends)."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from hq.testing import RunningHQ

if TYPE_CHECKING:
    import subprocess

# one client for all tests: creating one per request costs a TLS context each time
http = httpx.Client(timeout=30)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def order(order_id: str, sku: str = "game-100", quantity: int = 1, unit_price_cents: int = 9900,
          account: str | None = "player-1", contact: str = "buyer@example.cn", ip: str | None = "198.51.100.7",
          region: str | None = "CN") -> dict[str, Any]:
    return {
        "order_id": order_id, "sku": sku, "quantity": quantity, "unit_price_cents": unit_price_cents,
        "currency": "CNY", "buyer": {"account": account, "contact": contact, "ip": ip, "region": region},
        "created_at": datetime.now(timezone.utc).isoformat(),
    }


def post_orders(hq: RunningHQ, token: str, key: str, orders: list[dict[str, Any]]) -> httpx.Response:
    return http.post(f"{hq.url}/v1/orders", headers={**auth(token), "Idempotency-Key": key},
                      json={"orders": orders}, timeout=30)


def wait_order_status(hq: RunningHQ, token: str, order_id: str, status: str, seconds: float = 15) -> dict[str, Any]:
    """The site's view of its order once HQ says `status` (a payment lands asynchronously)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        got = httpx.get(f"{hq.url}/v1/orders/{order_id}", headers=auth(token)).json()
        if got["status"] == status or time.monotonic() > deadline:
            assert got["status"] == status, f"order {order_id} stayed {got['status']}"
            return got
        time.sleep(0.05)


def notifications_acknowledged(trade: Any, seconds: float = 10) -> int:
    """A sandbox trade's acknowledged notifications, once at least one is: the sandbox counts a notification
    only after HQ's answer reaches it, a moment after HQ has already acted on it."""
    import time

    deadline = time.monotonic() + seconds
    while trade.notified == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(trade.notified)


def wait_for_process(url: str, proc: "subprocess.Popen[bytes]") -> None:
    """Until `url` answers 200 (a started HQ process); fails with its stderr if it exits first."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"HQ exited with {proc.returncode}: {stderr[-800:]}")
        try:
            if http.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("HQ did not answer in time")


def open_hq(directory: Any, database_url: str | None = None, *, card_keys: int | None = None,
            direct_topup: str | None = None, rules: Any = None) -> Any:
    """An in-process HQ with site-a licensed for games and one SKU: `card-1` with keys S0000.., or a direct top-up.

    With KITCTL_TEST_TEMPLATES set (the mutation runner sets it: thousands of short runs), an SQLite HQ is
    copied from one prepared there once for the same arguments (`copied_hq`)."""
    if database_url is None and os.environ.get("KITCTL_TEST_TEMPLATES"):
        return copied_hq(directory, Path(os.environ["KITCTL_TEST_TEMPLATES"]), card_keys=card_keys,
                         direct_topup=direct_topup, rules=rules)
    return _prepared_hq(directory, database_url, card_keys=card_keys, direct_topup=direct_topup, rules=rules)


def copied_hq(directory: Any, templates: Path, *, card_keys: int | None = None, direct_topup: str | None = None,
              rules: Any = None) -> Any:
    """`open_hq` on SQLite, copied from a prepared HQ under `templates` (made there on first use): migrating and
    preparing one costs seconds, a copy milliseconds. The copies share the template's keys."""
    from hq.service import HQ
    from hq.settings import HQSettings

    template = templates / f"hq-{card_keys}-{direct_topup}"
    if not template.exists():
        scratch = Path(tempfile.mkdtemp(prefix=template.name + "-", dir=templates))
        _prepared_hq(scratch / "hq", None, card_keys=card_keys, direct_topup=direct_topup).close()
        os.replace(scratch / "hq", template)
        scratch.rmdir()
    shutil.copytree(template, directory)
    service = HQ.open(HQSettings(dir=Path(directory), database_url=None, registry_url=None), migrate=False)
    if rules is not None:
        service.rules.save(rules)
    return service


def _prepared_hq(directory: Any, database_url: str | None = None, *, card_keys: int | None = None,
                 direct_topup: str | None = None, rules: Any = None) -> Any:
    from hq import catalog, inventory, licences
    from hq.service import HQ
    from hq.settings import HQSettings

    service = HQ.open(HQSettings(dir=directory, database_url=database_url, registry_url=None))
    if direct_topup:
        catalog.upsert(service, "t", direct_topup, catalog.ItemSpec(name=direct_topup, category="game", face_value_cents=100,
                                                                   price_cents=90, stock_kind="direct_topup"))
    else:
        catalog.upsert(service, "t", "card-1", catalog.ItemSpec(name="c", category="game", face_value_cents=100,
                                                               price_cents=90, max_qty=10))
        rows = "".join(f"card-1,S{i:04d},x{i}\n" for i in range(card_keys or 0))
        inventory.import_csv(service, "t", "sku,serial,secret\n" + rows)
    licences.issue(service, "t", "site-a", "pro", ["game"], 365)
    if rules is not None:
        service.rules.save(rules)
    return service


def rewrite_row(session: Any, model: Any, *where: Any) -> None:
    """Delete the row and insert it again under its own id: it moves to the end of the table's physical order
    (and of its indexes' entries for equal keys) on PostgreSQL, so only an ORDER BY still finds it first."""
    from sqlalchemy import select

    row = session.scalar(select(model).where(*where))
    values = {c.key: getattr(row, c.key) for c in model.__table__.columns}
    session.delete(row)
    session.flush()
    session.execute(model.__table__.insert().values(**values))
