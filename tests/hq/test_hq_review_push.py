"""A review decision is pushed (issue 19): resolving an order queues a signed `review_decided` command for its site,
so the agent, woken over the push channel, asks for the decision at once (tests/agent/test_push.py)."""

from __future__ import annotations

from sqlalchemy import select

from hq import licences, orders, reviews
from hq.models import Command, Order
from hq.order_checks import SiteContext
from hq.risk import parse_rules
from hq.schemas import OrderBatch
from tests.agent.helpers import OPEN_RULES
from tests.hq.helpers import open_hq, order


def test_a_review_decision_is_a_signed_command_for_the_orders_site_and_not_for_a_revoked_one(tmp_path) -> None:
    service = open_hq(tmp_path / "hq", card_keys=5)
    try:
        service.rules.save(parse_rules({**OPEN_RULES, "limits": {**OPEN_RULES["limits"], "review_amount_cents": 50}}))
        ctx = SiteContext("site-a", ["game"], ["CN"])
        batch = OrderBatch.model_validate({"orders": [order("o-rev-1", "card-1", unit_price_cents=90),
                                                      order("o-rev-2", "card-1", unit_price_cents=90)]})
        results, _ = orders.submit(service, ctx, "k-rev-1", batch)
        assert [r["decision"] for r in results] == ["review", "review"], results
        reviews.resolve(service, "op", results[0]["hq_order_id"], "reject")
        with service.session() as s:
            [cmd] = s.scalars(select(Command).where(Command.type == "review_decided")).all()
            assert (cmd.site_id, cmd.payload) == ("site-a", {"order": "o-rev-1"})
            assert s.scalar(select(Order.status).where(Order.order_id == "o-rev-1")) == "rejected"
        licences.revoke(service, "op", "site-a", "terms")
        reviews.resolve(service, "op", results[1]["hq_order_id"], "reject")  # decided, but the site is told nothing
        with service.session() as s:
            assert len(s.scalars(select(Command).where(Command.type == "review_decided")).all()) == 1
    finally:
        service.close()
