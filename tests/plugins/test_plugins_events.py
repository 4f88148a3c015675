"""The event payloads are a contract: what the services send is what docs/plugins.md documents."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from plugins.events import EVENTS, CatalogItem, OrderDecided, reference

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_the_documented_payloads_are_the_generated_reference():
    found = re.search(r"<!-- events:begin -->\n(.*?)\n<!-- events:end -->", DOCS.read_text(), re.S)
    assert found, "docs/plugins.md has no generated events section"
    assert found.group(1) == reference(), "docs/plugins.md is stale: paste `python -m plugins.events` between the markers"


def test_every_event_hook_has_a_payload_model():
    from plugins.contract import EVENT_HOOKS

    assert set(EVENTS) == set(EVENT_HOOKS)


def test_the_agents_decision_event_is_the_documented_payload(tmp_path):
    """on_order_decided gets the buyer's contact, the status and the total (docs said only 'HQ's decision')."""
    from tests.agent.test_outbox_rules import KEY, T0, ScriptedHQ, add_order, delivered, rejected
    from agent.metrics import AgentMetrics
    from agent.outbox import Forwarder
    from sitedb.engine import make_engine
    from sitedb.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'site.db'}"
    upgrade(url)
    engine = make_engine(url)
    add_order(engine, "A1")
    add_order(engine, "A2", created=T0 + timedelta(seconds=1))
    hq = ScriptedHQ()
    hq.answers = {"A1": delivered("A1", "K-SECRET"), "A2": rejected("A2")}
    sent: list[tuple[str, dict[str, Any]]] = []
    Forwarder(engine, hq, AgentMetrics(), "xingchen", KEY, emit=lambda e, p: sent.append((e, p)),  # type: ignore[arg-type]
              wants=lambda e: True).forward_once()
    engine.dispose()
    decided = {p["order_id"]: OrderDecided.model_validate(p) for e, p in sent if e == "order_decided"}
    assert decided["A1"].status == "delivered" and decided["A1"].buyer_contact == "c@example.cn"
    assert decided["A2"].decision == "reject" and decided["A2"].total_cents == 1000
    assert "K-SECRET" not in repr(sent)


def test_the_agents_catalog_events_are_the_documented_payload():
    from agent.catalog_write import COLUMNS
    from agent.sync import CatalogSync

    sent: list[tuple[str, dict[str, Any]]] = []
    sync = CatalogSync.__new__(CatalogSync)  # only the event builder is under test
    sync.emit = lambda e, p: sent.append((e, p))
    values = {"sku": "G-1", "name": "card", "category": "game", "face_value_cents": 1000, "hq_price_cents": 900,
              "price_cents": 950, "status": "active"}
    row = tuple(values.get(c) for c in COLUMNS)
    sync._emit_changes([row], [("G-2", 7)])
    upserted, deleted = (CatalogItem.model_validate(p) for _, p in sent)
    assert (upserted.sku, upserted.deleted, upserted.price_cents, upserted.hq_price_cents) == ("G-1", False, 950, 900)
    assert (deleted.sku, deleted.deleted, deleted.price_cents) == ("G-2", True, None)
