"""Buyer contact, account and IP are sealed with the site key at rest, and every reader still works:
the buyer's order page, the admin list, search and CSV, and the agent forwarding to HQ (and plugins)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from agent.hq_client import OrderResult
from agent.metrics import AgentMetrics
from agent.outbox import Forwarder
from sitedb.buyer import Buyer, BuyerBox
from sitedb.engine import make_engine
from sitedb.migrate import upgrade
from storefront.admin_users import create_admin
from tests.storefront.http import form_token
from tests.storefront.support import seed
from tests.storefront.test_app_inprocess import _app, _submit

CONTACT = "Private.Buyer@Example.cn"
ACCOUNT = "13912345678"


def _rows(url: str) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM orders"))]
    finally:
        engine.dispose()


@pytest.fixture
def shop(tmp_path: Path) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, state = _app(tmp_path, url)
    placed = _submit(client, "P-CM-50", contact=CONTACT, account=ACCOUNT)
    assert placed.status_code == 303, placed.text
    order_id = placed.headers["location"].split("/order/")[1].split("?")[0]
    return {"url": url, "client": client, "state": state, "order_id": order_id, "db": tmp_path / "s.db"}


def test_checkout_keeps_no_contact_account_or_ip_in_clear(shop: dict[str, Any]) -> None:
    [row] = _rows(shop["url"])
    stored = " ".join(str(v) for v in row.values())
    ip = "testclient"  # the address the in-process client connects from
    for secret in (CONTACT, CONTACT.lower(), ACCOUNT, ip):
        assert secret not in stored
        assert secret.encode() not in shop["db"].read_bytes()  # nor anywhere in the database file
    buyer = BuyerBox(shop["state"].site_key).open(shop["order_id"], row["buyer_sealed"])
    assert buyer == Buyer(CONTACT, ACCOUNT, ip)


def test_a_box_does_not_open_under_another_order_id_or_key(shop: dict[str, Any]) -> None:
    [row] = _rows(shop["url"])
    with pytest.raises(ValueError):
        BuyerBox(shop["state"].site_key).open("ANOTHERORDER", row["buyer_sealed"])
    with pytest.raises(ValueError):
        BuyerBox(os.urandom(32)).open(shop["order_id"], row["buyer_sealed"])


def test_the_buyer_still_sees_their_account_on_the_order_page(shop: dict[str, Any]) -> None:
    page = shop["client"].get(f"/order/{shop['order_id']}")
    assert page.status_code == 200 and ACCOUNT in page.text


def _staff(shop: dict[str, Any]) -> Any:
    password = create_admin(shop["url"], "boss", migrate=False)
    client = shop["client"]
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": token, "username": "boss", "password": password}).status_code == 303
    return client


def test_staff_see_the_contact_and_find_the_order_by_it(shop: dict[str, Any]) -> None:
    client = _staff(shop)
    listing = client.get("/admin/orders")
    assert listing.status_code == 200 and CONTACT in listing.text
    found = client.get("/admin/orders", params={"q": "  private.buyer@example.CN "})
    assert shop["order_id"] in found.text
    other = client.get("/admin/orders", params={"q": "someone-else@example.cn"})
    assert shop["order_id"] not in other.text
    csv = client.get("/admin/orders.csv").text
    assert CONTACT in csv and ACCOUNT in csv and "testclient" not in csv


class RecordingHQ:
    """The HQ client boundary: records the bodies it is sent, approves nothing yet."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def submit_orders(self, orders: list[dict[str, Any]], key: str) -> list[OrderResult]:
        self.sent.extend(orders)
        return [OrderResult(order_id=o["order_id"], decision="reject", status="rejected") for o in orders]


def test_the_agent_forwards_the_opened_buyer_to_hq_and_tells_plugins_the_contact(shop: dict[str, Any]) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    hq = RecordingHQ()
    engine = make_engine(shop["url"])
    try:
        forwarder = Forwarder(engine, hq, AgentMetrics(), "xingchen", shop["state"].site_key,  # type: ignore[arg-type]
                              emit=lambda e, p: events.append((e, p)))
        assert forwarder.forward_once().decided == 1
    finally:
        engine.dispose()
    assert hq.sent[0]["buyer"] == {"account": ACCOUNT, "contact": CONTACT, "ip": "testclient", "region": None}
    assert events == [("order_decided", {**events[0][1], "buyer_contact": CONTACT})]


def test_an_order_the_agent_cannot_open_is_held_not_sent_half_empty(shop: dict[str, Any]) -> None:
    hq = RecordingHQ()
    engine = make_engine(shop["url"])
    try:
        forwarder = Forwarder(engine, hq, AgentMetrics(), "xingchen", os.urandom(32))  # type: ignore[arg-type]
        outcome = forwarder.forward_once()
    finally:
        engine.dispose()
    assert hq.sent == [] and outcome.decided == 0
    [row] = _rows(shop["url"])
    assert row["status"] == "pending" and row["last_error"] == "buyer data does not open with the site key"
    assert row["attempts"] == 1


# -- the migration seals what older versions stored in clear ------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_site(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A site database as kitctl 0.1 left it: schema 0001, one order with its buyer in clear."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO orders (id, sku, item_name, category, quantity, unit_price_cents, discount_cents, total_cents, "
            "hq_price_cents, currency, buyer_account, buyer_contact, buyer_ip, password_hash, extras, status, reasons, "
            "attempts, next_attempt_at, created_at, updated_at) VALUES ('OLD1', 's', 'n', 'game', 1, 1, 0, 1, 1, 'CNY', "
            f"'{ACCOUNT}', '{CONTACT}', '203.0.113.9', 'h', '{{}}', 'pending', '[]', 0, '2026-01-01', '2026-01-01', "
            "'2026-01-01')"))
    engine.dispose()
    return url


def _key_file(tmp_path: Path) -> tuple[Path, bytes]:
    key = os.urandom(32)
    path = tmp_path / "site_key"
    path.write_text(base64.b64encode(key).decode())
    return path, key


def test_upgrading_seals_orders_stored_in_clear(old_site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = old_site
    path, key = _key_file(tmp_path)
    monkeypatch.setenv("KIT_SITE_KEY_FILE", str(path))
    upgrade(url)
    [row] = _rows(url)
    assert "buyer_contact" not in row and "buyer_ip" not in row and "buyer_account" not in row
    assert BuyerBox(key).open("OLD1", row["buyer_sealed"]) == Buyer(CONTACT, ACCOUNT, "203.0.113.9")
    assert row["buyer_contact_index"] == BuyerBox(key).contact_index(CONTACT)


def test_upgrading_orders_without_the_site_key_stops_and_changes_nothing(old_site: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url = old_site
    monkeypatch.delenv("KIT_SITE_KEY_FILE", raising=False)
    with pytest.raises(RuntimeError, match="KIT_SITE_KEY_FILE"):
        upgrade(url)
    [row] = _rows(url)
    assert row["buyer_contact"] == CONTACT and "buyer_sealed" not in row


def test_downgrading_opens_the_boxes_again(old_site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic import command

    from sitedb.migrate import alembic_config

    url = old_site
    path, _key = _key_file(tmp_path)
    monkeypatch.setenv("KIT_SITE_KEY_FILE", str(path))
    upgrade(url)
    command.downgrade(alembic_config(url), "0001")
    [row] = _rows(url)
    assert (row["buyer_contact"], row["buyer_account"], row["buyer_ip"]) == (CONTACT, ACCOUNT, "203.0.113.9")
