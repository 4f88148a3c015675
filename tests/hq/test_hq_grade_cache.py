"""The grade cache on SQLite and PostgreSQL: a month's metrics are computed once per site and reused while
fresh; stale ones (the schedule) and those HQ's own changes touch (a complaint, a review decision) are
computed again; the configuration applies at once, since only metrics are kept."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from hq import complaints, grades
from hq.clock import utcnow
from hq.models import GradeCache, Order


def _order(hq, site: str, n: int, status: str = "delivered") -> None:  # type: ignore[no-untyped-def]
    at = utcnow()
    with hq.service.session() as s:
        s.add(Order(hq_order_id=f"hq_{site}_{n}", site_id=site, order_id=f"o{n}", request_sha256="0" * 64,
                    sku="card-1", quantity=1, unit_price_cents=10_000, currency="CNY", buyer_contact=f"b{n}@example.cn",
                    site_created_at=at, received_at=at, decision="approve", status=status, reasons=[]))


def _orders(hq, site: str) -> int:  # type: ignore[no-untyped-def]
    return {r["site"]: r for r in grades.ranking(hq.service)}[site]["metrics"]["orders"]


def test_metrics_are_reused_while_fresh_and_recomputed_when_stale_or_touched(hq_server) -> None:  # type: ignore[no-untyped-def]
    for site in ("one", "two"):
        hq_server.issue_licence(site)
    _order(hq_server, "one", 1)
    assert _orders(hq_server, "one") == 1
    with hq_server.service.session() as s:
        assert s.scalar(select(func.count()).select_from(GradeCache)) == 2 * 4  # two sites, four months
    _order(hq_server, "one", 2)  # written behind HQ's back: the cached month stands until it is stale
    assert _orders(hq_server, "one") == 1
    with hq_server.service.session() as s:
        s.execute(update(GradeCache).values(computed_at=utcnow() - timedelta(seconds=301)))  # the schedule: 300 s
    assert _orders(hq_server, "one") == 2

    complaints.record(hq_server.service, "two", str(uuid.uuid4()), "O-1", "late", utcnow())
    assert {r["site"]: r for r in grades.ranking(hq_server.service)}["two"]["metrics"]["complaints"] == 1  # at once
    assert grades.own_grade(hq_server.service, "two")["metrics"]["complaints"] == 1

    before = {r["site"]: r["score"] for r in grades.ranking(hq_server.service)}
    config = grades.config(hq_server.service).model_dump()
    config["scales"]["complaints"]["weight"] = 50
    grades.set_config(hq_server.service, "op", config)
    after = {r["site"]: r["score"] for r in grades.ranking(hq_server.service)}
    assert after != before  # the new weights apply at once, to the same cached metrics
    assert after["one"] - after["two"] > before["one"] - before["two"] > 0  # the complaint weighs more now


def test_a_review_decision_drops_its_months_metrics(hq_server) -> None:  # type: ignore[no-untyped-def]
    from hq import reviews

    hq_server.issue_licence("rev")
    _order(hq_server, "rev", 1, status="review")
    assert {r["site"]: r for r in grades.ranking(hq_server.service)}["rev"]["metrics"]["rejection_rate"] == 0.0
    reviews.resolve(hq_server.service, "op", "hq_rev_1", "reject")
    assert {r["site"]: r for r in grades.ranking(hq_server.service)}["rev"]["metrics"]["rejection_rate"] == 1.0
