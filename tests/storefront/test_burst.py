"""A burst of concurrent checkouts against the running app loses no order and creates no duplicate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from sitedb.engine import make_engine
from sitedb.models import Order
from sitedb.buyer import BuyerBox
from tests.storefront.conftest import Site, _sqlite_copy, _start
from tests.storefront.http import NONCE, form_token

BURST = 200
WORKERS = 20
RESUBMITTED = 25  # forms sent twice, as a double click or a retried request would


def _buy(base: str, i: int, transport: httpx.HTTPTransport) -> tuple[str, str | None]:
    """One buyer (own cookies, shared connection pool): open the product page, submit; some submit twice.

    The client is not closed: closing it would close the shared transport.
    """
    client = httpx.Client(base_url=base, timeout=60, transport=transport)
    page = client.get("/p/G-NET-50").text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": str(1 + i % 3),
            "contact": f"buyer{i}@example.cn", "password": f"pw-{i:06d}", "password2": f"pw-{i:06d}"}
    first = client.post("/p/G-NET-50/checkout", data=data)
    assert first.status_code == 303, (first.status_code, first.text[:300])
    order_url = first.headers["location"].split("?")[0]
    again = None
    if i % (BURST // RESUBMITTED) == 0:
        second = client.post("/p/G-NET-50/checkout", data=data)
        assert second.status_code == 303
        again = second.headers["location"].split("?")[0]
    return order_url, again


def _burst(site: Site) -> None:
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=WORKERS))
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda i: _buy(site.base, i, transport), range(BURST)))
    transport.close()
    urls = [u for u, _ in results]
    assert len(set(urls)) == BURST  # every buyer got their own order
    assert all(again == url for url, again in results if again is not None)  # a resubmit finds the same order
    engine = make_engine(site.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Order.id, Order.buyer_sealed, Order.status, Order.quantity, Order.total_cents)).all()
    finally:
        engine.dispose()
    assert len(rows) == BURST
    assert {f"/order/{r.id}" for r in rows} == set(urls)
    buyers = BuyerBox(site.site_key)
    assert sorted(buyers.open(r.id, r.buyer_sealed).contact for r in rows) == sorted(f"buyer{i}@example.cn" for i in range(BURST))
    assert all(r.status == "pending" and r.total_cents == 5206 * r.quantity for r in rows)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def burst_site(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded_sqlite: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIT_CHECKOUTS_PER_MINUTE", "10000")  # all buyers share 127.0.0.1 here
    if request.param == "sqlite":
        yield from _start(tmp_path, _sqlite_copy(seeded_sqlite, tmp_path), migrate_on_start=False)
    else:
        yield from _start(tmp_path, request.getfixturevalue("pg_url"))


@pytest.mark.slow
def test_200_concurrent_checkouts_lose_nothing_and_duplicate_nothing(burst_site):
    _burst(burst_site)
