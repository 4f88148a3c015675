"""The reseller API (licence feature api-access), through the ASGI app in-process: keys, scopes, idempotency,
rate limits, the audit trail, 403 when unlicensed, and an order placed through it then delivered."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from sitedb.engine import make_engine
from sitedb.models import AuditEntry, Order
from storefront.admin_users import create_admin
from storefront.ratelimit import RateLimiter
from tests.storefront.http import form_token
from tests.storefront.support import record_decision, seed, update_site_state
from tests.storefront.test_app_inprocess import _app

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")
ORDER = {"sku": "G-QQ-100", "quantity": 2, "contact": "reseller-buyer@example.cn"}


@pytest.fixture
def api(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    update_site_state(url, tier="pro", features=["storefront", "coupons", "api-access"])
    client, shop = _app(tmp_path / "site", url)
    password = create_admin(url, "boss", role="admin", migrate=False)
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": token, "username": "boss", "password": password}).status_code == 303
    return url, client, shop


def _key(client, name: str = "downstream", scopes=("catalog:read", "orders:write", "orders:read")) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/admin/api-keys").text
    r = client.post("/admin/api-keys", data={"csrf": form_token(page), "name": name, "scope": list(scopes)})
    assert r.status_code == 200, r.text[:300]
    return re.search(r'id="new-token">([^<]+)<', r.text).group(1)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _count(url: str, model, *where) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(model).where(*where))
    engine.dispose()
    return int(n)


def test_an_unlicensed_site_answers_403_with_a_clear_message_and_makes_no_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)  # features: coupons, notify
    client, _ = _app(tmp_path / "site", url)
    r = client.get("/api/v1/catalog", headers=_bearer("kit_000000000000_" + "x" * 43))
    assert r.status_code == 403 and r.json() == {"error": "this site's licence does not include api-access (the reseller API)"}
    password = create_admin(url, "boss", role="admin", migrate=False)
    client.post("/admin/login", data={"csrf": form_token(client.get("/admin/login").text), "username": "boss", "password": password})
    page = client.get("/admin/api-keys")
    assert 'id="api-not-licensed"' in page.text and 'id="api-key-form"' not in page.text
    refused = client.post("/admin/api-keys", data={"csrf": form_token(page.text), "name": "x", "scope": ["catalog:read"]})
    assert refused.status_code == 409 and _count(url, AuditEntry, AuditEntry.action == "api_key_created") == 0


def test_keys_are_needed_and_scoped(api):
    url, client, _ = api
    assert client.get("/api/v1/catalog").status_code == 401
    assert client.get("/api/v1/catalog", headers=_bearer("kit_nothex_secret")).status_code == 401
    reader = _key(client, "reader", ("catalog:read",))
    catalog = client.get("/api/v1/catalog", headers=_bearer(reader))
    assert catalog.status_code == 200
    qq = next(e for e in catalog.json() if e["sku"] == "G-QQ-100")
    assert qq["price_cents"] == 10422 and qq["currency"] == "CNY" and qq["stock"] == 120  # the site's price, not HQ's
    refused = client.post("/api/v1/orders", json=ORDER, headers={**_bearer(reader), "Idempotency-Key": "order-0001"})
    assert refused.status_code == 403 and refused.json() == {"error": "this key lacks the orders:write scope"}
    assert _count(url, Order) == 0


def test_orders_are_idempotent_take_the_shops_path_and_show_card_keys_once_delivered(api):
    url, client, shop = api
    token = _key(client)
    headers = {**_bearer(token), "Idempotency-Key": "order-0001"}
    assert client.post("/api/v1/orders", json=ORDER, headers=_bearer(token)).status_code == 422  # no Idempotency-Key
    first = client.post("/api/v1/orders", json=ORDER, headers=headers)
    assert first.status_code == 201, first.text
    placed = first.json()
    assert placed["status"] == "pending" and placed["total_cents"] == 2 * 10422 and placed["card_keys"] is None
    again = client.post("/api/v1/orders", json=ORDER, headers=headers)
    assert again.status_code == 200 and again.json()["order_id"] == placed["order_id"]
    other = client.post("/api/v1/orders", json={**ORDER, "quantity": 3}, headers=headers)
    assert other.status_code == 409 and "different order" in other.json()["error"]
    assert _count(url, Order) == 1  # one order: the agent's outbox forwards it to HQ like any other (status pending)
    bad = client.post("/api/v1/orders", json={**ORDER, "quantity": 99}, headers={**_bearer(token), "Idempotency-Key": "order-0002"})
    assert bad.status_code == 422 and "quantity" in bad.json()["error"] and _count(url, Order) == 1
    record_decision(url, placed["order_id"], shop.site_key, status="delivered", decision="approve",
                    card_keys=[{"serial": "S-1", "secret": "K-1"}, {"serial": "S-2", "secret": "K-2"}])
    state = client.get(f"/api/v1/orders/{placed['order_id']}", headers=_bearer(token)).json()
    assert state["status"] == "delivered" and state["card_keys"] == [{"serial": "S-1", "secret": "K-1"},
                                                                      {"serial": "S-2", "secret": "K-2"}]
    stranger = _key(client, "another shop")
    assert client.get(f"/api/v1/orders/{placed['order_id']}", headers=_bearer(stranger)).status_code == 404


def test_rotating_and_revoking_end_the_old_secret_at_once(api):
    url, client, _ = api
    old = _key(client)
    key_id = old.split("_")[1]
    page = client.get("/admin/api-keys").text
    rotated = client.post(f"/admin/api-keys/{key_id}/rotate", data={"csrf": form_token(page)})
    new = re.search(r'id="new-token">([^<]+)<', rotated.text).group(1)
    assert new != old and new.startswith(f"kit_{key_id}_")
    assert client.get("/api/v1/catalog", headers=_bearer(old)).status_code == 401
    assert client.get("/api/v1/catalog", headers=_bearer(new)).status_code == 200
    client.post(f"/admin/api-keys/{key_id}/revoke", data={"csrf": form_token(page)})
    assert client.get("/api/v1/catalog", headers=_bearer(new)).status_code == 401
    actions = {"api_key_created", "api_key_rotated", "api_key_revoked"}
    assert _count(url, AuditEntry, AuditEntry.action.in_(actions)) == 3


def test_each_call_is_audited_and_a_key_is_rate_limited(api):
    url, client, _ = api
    token = _key(client, scopes=("catalog:read",))
    client.app.app.state.api_limiter = RateLimiter(3, 60.0)
    answers = [client.get("/api/v1/catalog", headers=_bearer(token)).status_code for _ in range(5)]
    assert answers == [200, 200, 200, 429, 429]
    key_id = token.split("_")[1]
    assert _count(url, AuditEntry, AuditEntry.actor == f"api:{key_id}", AuditEntry.action == "api_call") == 3
    limited = client.get("/api/v1/catalog", headers=_bearer(token))
    assert limited.headers["retry-after"] == "60" and "calls a minute" in limited.json()["error"]


def test_bad_admin_input_is_one_clear_error_and_makes_no_key(api):
    url, client, _ = api
    page = client.get("/admin/api-keys").text
    for data, field in (({"name": "", "scope": ["catalog:read"]}, "e-name"), ({"name": "x<y>", "scope": ["catalog:read"]}, "e-name"),
                        ({"name": "ok", "scope": ["root"]}, "e-scope"), ({"name": "ok"}, "e-scope")):
        r = client.post("/admin/api-keys", data={"csrf": form_token(page), **data})
        assert r.status_code == 422 and f'id="{field}"' in r.text
    assert _count(url, AuditEntry, AuditEntry.action == "api_key_created") == 0


def test_the_api_is_documented_by_its_openapi(api):
    _, client, _ = api
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["info"]["title"] == "kitctl reseller API" and doc["info"]["version"] == "1.0.0"
    assert {"/api/v1/catalog", "/api/v1/orders", "/api/v1/orders/{order_id}"} <= set(doc["paths"])
    post = doc["paths"]["/api/v1/orders"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"]) and {"201", "200", "409", "429"} <= set(post["responses"])


def test_a_site_limited_to_regions_needs_the_buyers_region_and_refuses_others(api):
    """A reseller has no buyer's address to look up: it names the region, inside the licence's or refused."""
    url, client, _ = api
    update_site_state(url, regions=["CN"])
    token = _key(client)
    missing = client.post("/api/v1/orders", json=ORDER, headers={**_bearer(token), "Idempotency-Key": "region-0001"})
    assert missing.status_code == 422 and missing.json() == {"error": "buyer_region is needed: this site's licence limits regions"}
    outside = client.post("/api/v1/orders", json={**ORDER, "buyer_region": "US"},
                          headers={**_bearer(token), "Idempotency-Key": "region-0002"})
    assert outside.status_code == 403 and outside.json() == {"error": "This shop does not sell to your region (US)."}
    assert _count(url, Order) == 0
    inside = client.post("/api/v1/orders", json={**ORDER, "buyer_region": "CN-GD"},
                         headers={**_bearer(token), "Idempotency-Key": "region-0003"})
    assert inside.status_code == 201 and _count(url, Order, Order.buyer_region == "CN-GD") == 1
