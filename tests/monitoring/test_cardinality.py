"""Series counts stay flat with traffic: 10,000 orders from 1,000 distinct buyers add no series.

Real code paths: the agent's Forwarder posts the orders to a real HQ (risk engine with its
default rules, so velocity rules fire for repeat buyers); HQ counts requests, decisions and
rules; the storefront app serves order pages and lookups for as many ids and buyers.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from hq.testing import running_hq
from tests.monitoring.helpers import series_count

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*httpx.*")]
ORDERS, BUYERS, SKUS = 10_000, 1_000, 50


def _write_orders(engine, start: int, count: int) -> None:  # type: ignore[no-untyped-def]
    """Checkouts as the storefront writes them (buyer data sealed with the site key)."""
    from sitedb.buyer import Buyer, BuyerBox
    from sitedb.tables import orders
    from tests.agent.helpers import SITE_KEY

    box = BuyerBox(SITE_KEY)
    now = datetime.now(timezone.utc)
    rows = []
    for i in range(start, start + count):
        buyer = i % BUYERS
        price = 9900 if i % 97 else 150_000  # some go to review by amount
        oid, contact = f"o{uuid.uuid4().hex[:20]}", f"buyer{buyer}@example.cn"
        sealed = box.seal(oid, Buyer(contact, f"player-{buyer}", f"198.51.{buyer // 250}.{buyer % 250}"))
        rows.append(dict(id=oid, sku=f"card-{i % SKUS}", item_name="card", category="game",
                         quantity=1, unit_price_cents=price, discount_cents=0, total_cents=price, hq_price_cents=price,
                         currency="CNY", buyer_sealed=sealed, buyer_contact_index=box.contact_index(contact),
                         buyer_region="CN", password_hash="x", extras={}, status="pending", reasons=[], attempts=0,
                         next_attempt_at=now, created_at=now, updated_at=now))
    with engine.begin() as conn:
        conn.execute(insert(orders), rows)


def _forward_all(forwarder) -> None:  # type: ignore[no-untyped-def]
    while forwarder.forward_burst().sent:
        pass


def test_agent_and_hq_series_do_not_grow_with_orders_or_buyers(tmp_path: Path) -> None:
    from agent.hq_client import HQClient
    from agent.licence import evaluate, install_start_licence
    from agent.state import ensure_state
    from agent.metrics import AgentMetrics
    from agent.outbox import Forwarder
    from agent.stats import Observer
    from hq import api_admin, api_applications, api_complaints, api_grades, api_payments, api_settlement, api_site, api_stock, push_api
    from hq import apply_pages, fleet as fleet_pages, fleet_applications, fleet_payments, fleet_settlement
    from hq.metrics import RULES, FleetCollector, render
    from tests.agent.helpers import SITE_KEY, migrated_engine, sqlite_url

    with running_hq(tmp_path, site_rate_per_second=100_000, site_rate_burst=100_000) as hq:
        for n in range(SKUS):
            hq.seed_item(f"card-{n}", stock_kind="direct_topup")
        token = hq.issue_licence("card-site")
        engine = migrated_engine(sqlite_url(tmp_path))
        state = ensure_state(engine, "card-site")
        install_start_licence(engine, evaluate(token, hq.service.pinned()), state.licence_status, state.status_reason)
        metrics = AgentMetrics()
        client = HQClient(hq.url, token, metrics)
        forwarder = Forwarder(engine, client, metrics, "card-site", SITE_KEY)
        observer = Observer(engine, metrics, hq.service.pinned(), tmp_path, stack_probes={})
        fleet = FleetCollector(hq.service)

        def counts() -> tuple[int, int]:
            observer.observe()
            return series_count(metrics.render().decode()), series_count(render(fleet).decode())

        _write_orders(engine, 0, 1_000)  # every label value the traffic can reach appears in the first thousand
        _forward_all(forwarder)
        agent_1k, hq_1k = counts()
        _write_orders(engine, 1_000, ORDERS - 1_000)
        _forward_all(forwarder)
        agent_10k, hq_10k = counts()
        forwarder.close()
        client.close()
        engine.dispose()
        decided = sum(metrics.orders_forwarded.labels(d)._value.get() for d in ("approve", "review", "reject"))
    assert decided == ORDERS
    assert agent_10k == agent_1k  # ten times the orders, the same series
    assert agent_10k <= 400  # the agent's budget (docs/agent.md)
    text = render(fleet).decode()
    assert hq_10k - hq_1k <= 4, (hq_1k, hq_10k)  # velocity rules begin to fire for repeat buyers: a rule label each
    assert _label_values(text, "rule") <= set(RULES) | {"other"}  # rule names, never a buyer or a SKU
    routers = (api_site.router, api_admin.router, api_settlement.site_router, api_settlement.admin_router,
               fleet_pages.router, fleet_settlement.router, fleet_payments.router, api_payments.router,
               api_stock.admin_router, api_stock.router, api_applications.router, api_applications.admin_router,
               apply_pages.router, fleet_applications.router, api_grades.router, api_grades.site_router,
               api_complaints.router, api_complaints.admin_router)
    templates = {r.path for router in routers for r in router.routes} | {push_api.PATH}
    assert "/v1/orders" in _label_values(text, "route")
    assert _label_values(text, "route") <= templates | {"/v1/heartbeat", "/metrics", "/healthz", "/openapi.json", "/docs", "unmatched"}  # templates only
    assert "player-" not in text and "buyer1@" not in text and "card-1" not in text and "198.51." not in text


def _label_values(text: str, label: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {s.labels[label] for f in text_string_to_metric_families(text) for s in f.samples if label in s.labels}


def test_storefront_series_do_not_grow_with_order_ids_or_buyers(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from storefront.app import create_app
    from storefront.settings import StorefrontSettings
    from tests.storefront.http import form_token
    from tests.storefront.support import seed, write_site_files

    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    env = write_site_files(tmp_path / "site")
    app = create_app(StorefrontSettings(database_url=url, site_config=env["KIT_SITE_CONFIG"],
                                        secret_key_file=env["KIT_SECRET_KEY_FILE"],
                                        site_key_file=env["KIT_SITE_KEY_FILE"], state_cache_seconds=0))
    shop = app.app.state.shop  # type: ignore[attr-defined]
    client = TestClient(app, base_url="http://testserver", follow_redirects=False)
    token = form_token(client.get("/order").text)

    def traffic(first: int, count: int) -> int:
        for i in range(first, first + count):
            client.get(f"/order/K{i:011d}")  # order pages of as many order ids
            if i % 10 == 0:  # a thousand distinct buyers looking their orders up
                client.post("/order", data={"csrf": token, "order_id": f"K{i:011d}", "password": f"pw-{i}"},
                            headers={"X-Forwarded-For": f"203.0.113.{i % 250}"})
        return series_count(shop.metrics.render().decode())

    at_1k = traffic(0, 1_000)
    at_10k = traffic(1_000, ORDERS - 1_000)
    assert at_10k == at_1k
    assert at_10k <= 200
