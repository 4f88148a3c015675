"""Properties of grading (hypothesis): the grade is monotonic in each metric as documented, and counting
repeat buyers never stores or returns a contact."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hq import grading, grades, site_metrics
from hq.clock import utcnow
from hq.grading import BAD, GOOD, GradingConfig, grade_of, score
from hq.models import AuditEvent, Order

RANK = {"A": 3, "B": 2, "C": 1, "D": 0}
rates = st.one_of(st.none(), st.floats(0, 1))
metric_values = st.fixed_dictionaries({
    "gmv_cents": st.integers(0, 10**9), "growth": st.one_of(st.none(), st.floats(-1, 10)),
    "orders": st.integers(0, 10**6), "repurchase_rate": rates, "uptime": st.floats(0, 1),
    "sync_health": st.floats(0, 1), "rejection_rate": rates, "review_rate": rates, "refund_rate": rates,
    "complaints": st.integers(0, 1000)})
scales = st.builds(lambda worst, span, weight: (worst, span, weight), st.floats(-5, 5), st.floats(0.01, 10),
                   st.floats(0, 10))


def _config(draw_scales: list[tuple[float, float, float]], cuts: list[float]) -> GradingConfig:
    data: dict[str, Any] = {}
    for name, (worst, span, weight) in zip(grading.METRICS, draw_scales):
        good = name in GOOD
        data[name] = {"worst": worst if good else worst + span, "best": worst + span if good else worst,
                      "weight": weight}
    data[grading.METRICS[0]]["weight"] = max(data[grading.METRICS[0]]["weight"], 0.1)
    a, b, c = sorted(cuts, reverse=True)
    return GradingConfig(scales=data, grades={"A": a + 2, "B": b + 1, "C": c + 0.5, "D": 0})


@settings(max_examples=500, deadline=None)
@given(metric_values, st.sampled_from(grading.METRICS), st.floats(-5, 5), st.floats(-5, 5),
       st.lists(scales, min_size=10, max_size=10), st.lists(st.floats(1, 90), min_size=3, max_size=3))
def test_the_grade_never_gets_worse_when_one_metric_gets_better(metrics, name, a, b, drawn, cuts) -> None:  # type: ignore[no-untyped-def]
    config = _config(drawn, cuts)
    low, high = sorted((a, b))
    worse, better = ({**metrics, name: low}, {**metrics, name: high}) if name in GOOD else \
        ({**metrics, name: high}, {**metrics, name: low})
    s1, s2 = score(worse, config), score(better, config)
    assert s2 >= s1
    assert RANK[grade_of(s2, config)] >= RANK[grade_of(s1, config)]


@settings(max_examples=400, deadline=None)
@given(metric_values, st.lists(scales, min_size=10, max_size=10), st.lists(st.floats(1, 90), min_size=3, max_size=3))
def test_what_would_raise_it_reaches_the_next_grades_line(metrics, drawn, cuts) -> None:  # type: ignore[no-untyped-def]
    """Each step marked `alone` reaches the next grade's line by that metric alone; the others cannot."""
    config = _config(drawn, cuts)
    plan = grading.next_line(metrics, config)
    points = score(metrics, config)
    assert plan["grade"] == grade_of(points, config)
    if plan["next_grade"] is None:
        assert plan["grade"] == "A" and plan["steps"] == []
        return
    line = config.grades[plan["next_grade"]]
    assert RANK[plan["next_grade"]] == RANK[plan["grade"]] + 1 and plan["points_needed"] == round(line - points, 2)
    for step in plan["steps"]:
        moved = score({**metrics, step["metric"]: step["target"]}, config)
        if step["alone"]:
            assert moved >= line and RANK[grade_of(moved, config)] > RANK[plan["grade"]], (step, metrics, config)
        else:
            assert points < moved < line, step  # its best helps, not enough on its own
    movable = {n for n, s in config.scales.items() if metrics.get(n) is not None
               and score({**metrics, n: s.best}, config) > points}
    assert {st_["metric"] for st_ in plan["steps"]} == movable  # every metric that could help is named


def test_what_would_raise_it_with_the_default_scales() -> None:
    """A C site (46.18 points, B's line at 60): GMV alone can reach it, at the least whole cent that does;
    the other metrics, each at its best, add what they can and fall short."""
    metrics = {"gmv_cents": 1_000_000, "growth": -0.1, "orders": 120, "repurchase_rate": 0.05, "uptime": 0.97,
               "sync_health": 0.99, "rejection_rate": 0.08, "review_rate": 0.1, "refund_rate": 0.04, "complaints": 3}
    config = GradingConfig()
    plan = grading.next_line(metrics, config)
    assert (plan["grade"], plan["next_grade"], plan["points_needed"]) == ("C", "B", 13.82)
    first, *rest = plan["steps"]
    assert first["metric"] == "gmv_cents" and first["alone"] and first["points"] == 13.82
    gmv = first["target"]  # 3 of 15 weight: 13.82 points are 69.1 % of the ¥50,000 scale above ¥10,000
    assert 4_400_000 < gmv < 4_500_000 and score({**metrics, "gmv_cents": gmv - 1}, config) < 60 <= score(
        {**metrics, "gmv_cents": gmv}, config)
    assert [s["metric"] for s in rest][:2] == ["repurchase_rate", "orders"]  # most points first
    assert all(not s["alone"] and s["target"] == config.scales[s["metric"]].best for s in rest)
    assert rest[0]["points"] == round(100 * 2 * (1 - 0.05 / 0.3) / 15, 2)  # repurchase: weight 2 of 15
    assert {"metric": "complaints", "value": 3, "target": 0, "alone": False, "points": 2.0, "share": 0.3} in rest


@settings(max_examples=200, deadline=None)
@given(metric_values)
def test_with_the_default_configuration_too(metrics) -> None:  # type: ignore[no-untyped-def]
    config = GradingConfig()
    points = score(metrics, config)
    assert 0 <= points <= 100
    best = {n: (s.best if n in GOOD else s.best) for n, s in config.scales.items()}
    worst = {n: s.worst for n, s in config.scales.items()}
    assert grade_of(score(best, config), config) == "A" and grade_of(score(worst, config), config) == "D"
    for name in BAD:  # a worse bad metric never helps
        worse = {**metrics, name: (metrics[name] or 0.0) + 1.0}  # a rate or a count of complaints, one more
        assert score(worse, config) <= score({**metrics, name: metrics[name] or 0.0}, config)


def test_a_configuration_that_would_break_monotonicity_is_refused() -> None:
    data = GradingConfig().model_dump()
    data["scales"]["refund_rate"] = {"worst": 0.0, "best": 0.1, "weight": 1}  # more refunds would score higher
    with pytest.raises(ValueError, match="refund_rate: worst must be above best"):
        GradingConfig.model_validate(data)
    data = GradingConfig().model_dump()
    data["grades"] = {"A": 50, "B": 60, "C": 40, "D": 0}
    with pytest.raises(ValueError, match="A > B > C > D = 0"):
        GradingConfig.model_validate(data)


contacts = st.lists(st.sampled_from(["buyer@example.cn", "Buyer@Example.cn ", "13800138000", "qq:12345", "x@y.cn"]),
                    min_size=0, max_size=30)
SITES = itertools.count()


@pytest.fixture(scope="module")
def graded_hq(tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.hq.helpers import open_hq

    service = open_hq(tmp_path_factory.mktemp("grading"), card_keys=0)
    yield service
    service.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contacts)
def test_repeat_buyers_are_counted_on_hashes_and_no_contact_is_kept(graded_hq, buyers) -> None:  # type: ignore[no-untyped-def]
    from hq import licences

    site = f"grade-{next(SITES)}"
    licences.issue(graded_hq, "t", site, "basic", ["game"], 365)
    now = utcnow()
    with graded_hq.session() as s:
        for i, contact in enumerate(buyers):
            s.add(Order(hq_order_id=f"hq_{site}_{i}", site_id=site, order_id=f"o{i}", request_sha256="0" * 64,
                        sku="card-1", quantity=1, unit_price_cents=100, currency="CNY", buyer_contact=contact,
                        site_created_at=now, received_at=now, decision="approve", status="delivered", reasons=[]))
    seen: list[str] = []
    start, end = now - timedelta(minutes=1), now + timedelta(minutes=1)

    def spy(contact: str) -> str:
        key = graded_hq.vault.index(contact, site_metrics.PURPOSE)
        seen.append(key)
        return key

    counted = site_metrics.repurchase_by_site(graded_hq, start, end, key=spy).get(site, (0, 0))
    normal = [c.strip().casefold() for c in buyers]
    truth = (len(set(normal)), sum(1 for c in set(normal) if normal.count(c) >= 2))
    assert counted == truth
    assert site_metrics.repurchase(seen[-len(buyers):] if buyers else []) == truth  # counted from the keys alone
    with graded_hq.session() as s:
        audit_before = s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    figures = site_metrics.metrics(graded_hq, [site], start, end)
    rows = [r for r in grades.ranking(graded_hq) if r["site"] == site]
    exported = json.dumps([figures, rows], default=str) + grades.to_csv(rows)
    for contact in set(buyers):
        assert contact not in exported and contact.strip() not in exported
        assert graded_hq.vault.index(contact, site_metrics.PURPOSE) not in exported  # nor its hash
    with graded_hq.session() as s:  # grading wrote nothing (no contact, no hash, anywhere)
        assert s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) == audit_before
