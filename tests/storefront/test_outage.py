"""The shop while its database is unreachable: a branded, localised 503 at once, never a hang or a 500 (issue 26)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.storefront.http import NONCE, form_token
from tests.storefront.support import seed

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's DNS for a stopped container: a failure after ~10 s (3 s here)."""
    from tests.support.slowdns import slow_dns as install

    install(monkeypatch)


def _client(tmp_path: Path, url: str):  # type: ignore[no-untyped-def]
    from tests.storefront.test_app_inprocess import _app

    return _app(tmp_path, url, migrate_on_start=False)


def _timed(call):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _is_maintenance(response, text: str) -> bool:  # type: ignore[no-untyped-def]
    return (response.status_code == 503 and response.headers.get("retry-after") == "5"
            and 'id="maintenance"' in response.text and text in response.text and "星辰游戏" in response.text
            and response.headers.get("cache-control") == "no-store")


def test_pages_answer_503_maintenance_within_a_second_when_the_database_name_does_not_resolve(tmp_path, slow_dns):
    client, shop = _client(tmp_path, "postgresql+psycopg://kit:pw@db.stopped.test:5432/kit")
    for path in ("/", "/p/G-QQ-100", "/?c=game"):
        page, took = _timed(lambda: client.get(path))
        assert took < 1.2, (path, took)
        assert _is_maintenance(page, "本站正在维护"), (path, page.status_code, page.text[:300])
        assert 'href="/branding/logo.svg"' not in page.text or "logo" in page.text  # branded by site.json, no DB
    english, took = _timed(lambda: client.get("/p/G-QQ-100?lang=en"))
    assert took < 1.2 and _is_maintenance(english, "The shop is under maintenance")
    assert "Orders already placed are stored safely" in english.text
    # what needs no database keeps working
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/branding/theme.css").status_code == 200
    assert client.get("/branding/logo.svg").status_code == 200
    assert client.get("/no/such/page").status_code == 404


def test_a_checkout_during_the_outage_says_nothing_was_taken(tmp_path, slow_dns):
    from storefront.checkout import new_nonce

    client, shop = _client(tmp_path, "postgresql+psycopg://kit:pw@db.stopped.test:5432/kit")
    client.cookies.set("kit_csrf", "seed-for-the-test")
    form = {"csrf": shop.signers.csrf.mac(b"seed-for-the-test"), "nonce": new_nonce(shop.signers.nonce, "G-QQ-100"),
            "quantity": "1", "contact": "13800138000", "password": "secret-pw", "password2": "secret-pw"}
    refused, took = _timed(lambda: client.post("/p/G-QQ-100/checkout", data=form, headers={"Accept-Language": "zh"}))
    assert took < 1.2
    assert _is_maintenance(refused, "这次下单没有成功，未产生任何扣款")
    assert "同一张表单无论提交几次，都只会生成一个订单" in refused.text


@pytest.fixture
def restartable_pg() -> Iterator[object]:
    from tests.agent.pgcluster import RestartablePostgres
    from tests.conftest import require
    from tests.support.postgres import pg_bindir

    require(pg_bindir() is not None, "PostgreSQL server is not installed")
    pg = RestartablePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.mark.postgres
def test_database_restart_503_then_normal_service_at_once_and_a_retried_checkout_commits_once(tmp_path, restartable_pg):
    from sqlalchemy import func, select

    from sitedb.engine import make_engine
    from sitedb.models import Order

    url = restartable_pg.admin_url  # type: ignore[attr-defined]
    seed(url)
    client, _shop = _client(tmp_path, url)
    product = client.get("/p/G-QQ-100")
    assert product.status_code == 200
    form = {"csrf": form_token(product.text), "nonce": form_token(product.text, NONCE), "quantity": "1",
            "contact": "13800138000", "password": "secret-pw", "password2": "secret-pw"}
    restartable_pg.stop()  # type: ignore[attr-defined]
    try:
        for path in ("/", "/p/G-QQ-100", "/order"):
            page, took = _timed(lambda: client.get(path))
            if path == "/order":  # the lookup form needs no database
                assert page.status_code == 200
                continue
            assert took < 1.2 and _is_maintenance(page, "本站正在维护"), (path, page.status_code)
        refused, took = _timed(lambda: client.post("/p/G-QQ-100/checkout", data=form))
        assert took < 1.2 and _is_maintenance(refused, "未产生任何扣款")
    finally:
        restartable_pg.start()  # type: ignore[attr-defined]
    back = time.monotonic()
    first_ok = None
    while time.monotonic() - back < 5:
        if client.get("/p/G-QQ-100").status_code == 200:
            first_ok = time.monotonic() - back
            break
        time.sleep(0.05)
    assert first_ok is not None and first_ok < 1.0, first_ok
    placed = client.post("/p/G-QQ-100/checkout", data=form)  # the buyer sends the same form again
    assert placed.status_code == 303 and "placed=1" in placed.headers["location"]
    again = client.post("/p/G-QQ-100/checkout", data=form)
    assert again.status_code == 303 and again.headers["location"].split("?")[0] == placed.headers["location"].split("?")[0]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Order)) == 1
    finally:
        engine.dispose()
