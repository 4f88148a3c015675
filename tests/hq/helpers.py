"""Helpers shared by HQ tests (requests a site sends)."""

from __future__ import annotations

from datetime import datetime, timezone
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
