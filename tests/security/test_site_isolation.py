"""Per-site isolation at HQ, a defence that already held: one site's licence never reaches another's orders."""

from __future__ import annotations

import httpx

from hq.testing import running_hq
from tests.hq.helpers import auth, order, post_orders


def test_a_site_cannot_read_or_replay_another_sites_order(tmp_path):
    with running_hq(tmp_path) as hq:
        _isolated(hq)


def _isolated(hq) -> None:
    hq.seed_item("game-100")
    hq.seed_card_keys("game-100", 3)
    alpha, beta = hq.issue_licence("alpha"), hq.issue_licence("beta")
    first = post_orders(hq, alpha, "alpha-1", [order("o-1")])
    assert first.status_code == 200
    delivered = first.json()["results"][0]["delivery"]["card_keys"]
    assert delivered

    # beta asks for alpha's order by id: not found, no card key
    peek = httpx.get(f"{hq.url}/v1/orders/o-1", headers=auth(beta))
    assert peek.status_code == 404 and "delivery" not in peek.json()
    # beta reuses alpha's idempotency key and order id: its own new order, never alpha's answer
    replay = post_orders(hq, beta, "alpha-1", [order("o-1")])
    assert replay.status_code == 200 and "idempotent-replayed" not in replay.headers
    result = replay.json()["results"][0]
    assert result["replayed"] is False and not [k for k in result["delivery"]["card_keys"] if k in delivered]
    # alpha still sees its own order as it was
    mine = httpx.get(f"{hq.url}/v1/orders/o-1", headers=auth(alpha))
    assert mine.status_code == 200 and mine.json()["delivery"]["card_keys"] == delivered
