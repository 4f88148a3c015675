"""200 buyers check out and pay at once, across the processes (tests/agent/paid_stack.py: storefront and agent as
real processes, HQ served with epay, the epay sandbox) (issue 16). The whole stack in containers runs single
paid checkouts (tests/e2e/test_loop.py); this is the load.

Every order is delivered once, with a card key no other order got; every notification lands once.
Bounded: 200 orders, 8 buyer threads, every wait capped (not a timing test: bench/paid_checkouts_bench.py measures).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hq.models import CardKey, LedgerEntry
from tests.agent.helpers import wait_until
from tests.agent.paid_stack import Buyer, paid_stack

pytestmark = pytest.mark.slow
ORDERS = 200


def _all(pool: ThreadPoolExecutor, buyers: list[Buyer], what: str) -> list[Any]:
    return list(pool.map(lambda b: getattr(b, what)(), buyers))


def test_200_concurrent_paid_checkouts_are_each_delivered_once_and_no_key_is_sold_twice(tmp_path: Path) -> None:
    with paid_stack(tmp_path, ORDERS, payment_poll="0.5") as stack, ThreadPoolExecutor(8) as pool:
        buyers = [Buyer(stack.base, n) for n in range(ORDERS)]
        _all(pool, buyers, "order")
        wait_until(lambda: set(_all(pool, buyers, "status")) == {"pending_payment"}, 120, 1,
                   what="every order payable")
        trades = _all(pool, buyers, "pay")
        wait_until(lambda: set(_all(pool, buyers, "status")) == {"delivered"}, 180, 1,
                   what="every paid order delivered")
        shown = _all(pool, buyers, "secrets")
        with stack.hq.service.read() as conn:
            sold = conn.execute(select(CardKey.order_pk, func.count()).where(CardKey.status == "sold")
                                .group_by(CardKey.order_pk)).all()
            entries = conn.execute(select(func.count()).select_from(LedgerEntry)
                                   .where(LedgerEntry.kind == "order")).scalar()
        notified = {stack.box.trades[t].notified for t in trades}
    print(f"GETs dropped unanswered and sent again: {sum(b.resent() for b in buyers)}")  # noqa: T201 (a figure)
    assert len(sold) == ORDERS and {n for _, n in sold} == {1} and entries == ORDERS
    assert [len(s) for s in shown] == [1] * ORDERS and len({s[0] for s in shown}) == ORDERS  # each buyer's own key
    assert {s[0] for s in shown} <= {k["secret"] for k in stack.keys}
    assert len(set(trades)) == ORDERS and notified == {1}  # each notification landed once
