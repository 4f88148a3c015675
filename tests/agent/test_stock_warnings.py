"""Stock warnings end to end on the real HQ server, the agent and the storefront (in-process):
threshold 5 and 6 keys → orders take it to low stock (the shop shows it, operators told once) →
sold out (checkout refuses, nothing written or charged) → keys imported → back in stock, the buyer
who asked is mailed once and can unsubscribe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from hq import inventory, stock
from hq.models import Order as HQOrder
from hq.models import RestockRequest
from agent.restock import forward_once as restock_forward
from sitedb.models import Order
from sitedb.tables import restock_requests
from tests.agent.helpers import OPEN_RULES, shop_client, write_orders
from tests.monitoring.receivers import smtp_server, webhook
from tests.storefront.http import NONCE, form_token

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[Any]:
    """An HQ that tells operators by webhook and mail (the test runs the watch rounds itself)."""
    from hq.testing import running_hq

    with webhook() as hook, smtp_server() as (box, port):
        with running_hq(tmp_path / "hq", alert_check_seconds=3600, alert_webhook_url=hook.url,
                        alert_email_to="ops@example.cn", smtp_host="127.0.0.1", smtp_port=port) as server:
            server.set_rules(OPEN_RULES)
            server.hook, server.box = hook, box  # type: ignore[attr-defined]
            yield server


def _shop(tmp_path: Path, site: Any) -> Any:
    """The storefront on the agent's database, sealing with the same site key."""
    return shop_client(tmp_path / "shop", site)


def _checkout(shop: Any, sku: str) -> httpx.Response:
    page = shop.get(f"/p/{sku}").text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw"}
    return shop.post(f"/p/{sku}/checkout", data=data)


def _ask(shop: Any, sku: str, email: str) -> httpx.Response:
    page = shop.get(f"/p/{sku}").text
    return shop.post(f"/p/{sku}/notify", data={"csrf": form_token(page), "email": email})


def _sell(started: Any, engine: Any, sku: str, n: int) -> None:
    write_orders(engine, n, sku)
    assert started.forwarder.forward_once().decided == n


def _round(hq: Any, started: Any) -> int:
    """One HQ stock round, then the shop's sync (as their loops would)."""
    told = stock.watch(hq.service)
    started.sync.run()
    return told


def test_low_stock_then_sold_out_then_back_with_one_mail(hq, started, engine, site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sku = f"stk-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    hq.seed_card_keys(sku, 6)
    put = httpx.put(f"{hq.url}/v1/admin/stock/{sku}", headers=hq.admin_headers(), json={"threshold": 5})
    assert put.status_code == 200, put.text
    started.heartbeat.beat()
    assert _round(hq, started) == 0  # 6 keys, threshold 5: in stock, nothing to tell
    shop = _shop(tmp_path, site)
    assert 'data-stock="low"' not in shop.get("/").text

    _sell(started, engine, sku, 1)  # 5 left: not below 5 yet
    assert _round(hq, started) == 0
    _sell(started, engine, sku, 2)  # 3 left: low
    assert _round(hq, started) == 1
    assert 'data-stock="low"' in shop.get("/").text and 'data-stock="low"' in shop.get(f"/p/{sku}").text
    [low] = hq.hook.received
    assert (low["kind"], low["state"], low["site"]) == ("low_stock", "firing", f"sku {sku}")
    assert "3 card keys left, below the threshold of 5" in low["summary"]
    assert hq.box.subjects() == [f"[kitctl HQ] FIRING sku {sku}: low stock"]
    assert _round(hq, started) == 0 and len(hq.hook.received) == 1  # still low: told once
    with httpx.Client(base_url=hq.url, timeout=30, follow_redirects=False) as fleet:
        assert fleet.post("/fleet/login", data={"token": hq.operator_token}).status_code == 303
        assert f'<tr data-sku="{sku}" data-stock="low">' in fleet.get("/fleet").text  # the fleet page lists it

    _sell(started, engine, sku, 3)  # 0 left
    assert _round(hq, started) == 1
    assert hq.hook.received[-1]["kind"] == "sold_out" and hq.hook.received[-1]["severity"] == "critical"
    page = shop.get(f"/p/{sku}").text
    assert 'data-stock="sold_out"' in page and "已售罄" in page
    with hq.service.session() as s:
        before_hq = s.scalar(select(func.count()).select_from(HQOrder))
    with engine.connect() as conn:
        before_site = conn.scalar(select(func.count()).select_from(Order))
    refused = _checkout(shop, sku)
    assert refused.status_code in (409, 422) and "该商品已售罄，暂不能下单，也不会扣款。" in refused.text
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Order)) == before_site  # nothing written, nothing charged
    with hq.service.session() as s:
        assert s.scalar(select(func.count()).select_from(HQOrder)) == before_hq

    bad = _ask(shop, sku, "not-an-address")
    assert bad.status_code == 422 and "请填写有效的电子邮箱地址。" in bad.text
    asked = _ask(shop, sku, "buyer@example.cn")
    assert asked.status_code == 200 and 'data-restock="saved"' in asked.text
    assert _ask(shop, sku, "Buyer@Example.cn").status_code == 200  # the same address again
    with engine.connect() as conn:
        sealed = conn.execute(select(restock_requests.c.email_sealed)).scalars().all()
    assert len(sealed) == 2 and not any("example" in s for s in sealed)  # sealed at the site
    assert restock_forward(engine, started.forwarder.client, site.site_key) == 2
    with engine.connect() as conn:  # passed on: the site keeps no address
        assert conn.scalar(select(func.count()).select_from(restock_requests)) == 0
    with hq.service.session() as s:
        [request] = s.scalars(select(RestockRequest).where(RestockRequest.sku == sku)).all()
        assert "buyer@example.cn" not in request.email_enc and "example" not in request.email_index
    assert _round(hq, started) == 0 and not [m for m in hq.box.messages if "back in stock" in str(m["Subject"])]

    inventory.import_csv(hq.service, "test", "sku,serial,secret\n" + "".join(f"{sku},R{i},r{i}\n" for i in range(10)))
    mails_before = len(hq.box.messages)
    assert _round(hq, started) == 1  # operators: resolved
    assert hq.hook.received[-1]["state"] == "resolved" and "back in stock (10 card keys)" in hq.hook.received[-1]["summary"]
    buyer_mail = [m for m in hq.box.messages[mails_before:] if str(m["To"]) == "buyer@example.cn"]
    assert len(buyer_mail) == 1 and "is back in stock" in str(buyer_mail[0]["Subject"])
    assert 'data-stock="sold_out"' not in shop.get(f"/p/{sku}").text
    assert _round(hq, started) == 0
    assert len([m for m in hq.box.messages if str(m["To"]) == "buyer@example.cn"]) == 1  # sent once

    link = re.search(r"(http://\S+/v1/restock/unsubscribe\?r=(\d+)&s=([0-9a-f]{32}))", buyer_mail[0].get_content())
    assert link is not None
    assert httpx.get(link.group(1).replace(hq.service.settings.public_url.rstrip("/"), hq.url)).status_code == 200
    forged = httpx.post(f"{hq.url}/v1/restock/unsubscribe", data={"r": link.group(2), "s": "0" * 32})
    assert forged.status_code == 404
    done = httpx.post(f"{hq.url}/v1/restock/unsubscribe", data={"r": link.group(2), "s": link.group(3)})
    assert done.status_code == 200 and "Unsubscribed" in done.text
    with hq.service.session() as s:
        assert s.get(RestockRequest, int(link.group(2))).unsubscribed_at is not None


def test_bad_threshold_and_restock_input_is_one_line_and_stores_nothing(hq, site) -> None:  # type: ignore[no-untyped-def]
    sku = f"stk-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=9500)
    hq.seed_item(f"top-{site.site_id}", category="game", price_cents=9500, stock_kind="direct_topup")
    for body, status in (({"threshold": -1}, 422), ({"threshold": "5"}, 422), ({"threshold": 5, "x": 1}, 422)):
        answer = httpx.put(f"{hq.url}/v1/admin/stock/{sku}", headers=hq.admin_headers(), json=body)
        assert answer.status_code == status and "\n" not in answer.json()["detail"]
    assert httpx.put(f"{hq.url}/v1/admin/stock/nope", headers=hq.admin_headers(), json={"threshold": 1}).status_code == 404
    top = httpx.put(f"{hq.url}/v1/admin/stock/top-{site.site_id}", headers=hq.admin_headers(), json={"threshold": 1})
    assert top.status_code == 409 and top.json()["error"] == "not_card_key"
    auth = {"Authorization": f"Bearer {site.licence_file.read_text()}"}
    for body in ({"sku": sku, "email": "no-at-sign"}, {"sku": sku, "email": "a@b.cn\n"}, {"sku": "nope", "email": "a@b.cn"}):
        assert httpx.post(f"{hq.url}/v1/restock", headers=auth, json=body).status_code in (404, 422)
    assert httpx.post(f"{hq.url}/v1/restock", json={"sku": sku, "email": "a@b.cn"}).status_code == 401
    with hq.service.session() as s:
        assert s.scalar(select(func.count()).select_from(RestockRequest)) == 0
    assert stock.listing(hq.service)["skus"][0]["own_threshold"] is None


def test_state_follows_the_threshold() -> None:
    assert [stock.state_of(n, 5) for n in (0, 1, 4, 5, 6)] == ["sold_out", "low", "low", "in_stock", "in_stock"]
    assert [stock.state_of(n, 0) for n in (0, 1)] == ["sold_out", "in_stock"]  # 0: no low-stock warning
    from kitcore import mailaddr

    assert mailaddr.valid("buyer@example.cn") and not mailaddr.valid("buyer@example.cn\n")
    assert not mailaddr.valid(" buyer@example.cn") and not mailaddr.valid("a@b")
