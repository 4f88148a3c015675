"""The risk rules at their boundaries, with literal amounts and timestamps (not derived from the engine's defaults).

`judge` is the engine without a database: given an order and what HQ has
seen, the decision. The windows it is fed (velocity, the site's day) are
counted from the database by `velocity_counts` and `site_today`, checked here
at the edges of their windows.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from hq.models import Order
from hq.risk import Candidate, Counts, Rules, VelocityRule, judge, parse_rules, site_today, velocity_counts
from hq.service import HQ
from kitcore.errors import InvalidInput
from tests.hq.helpers import open_hq

NOW = datetime(2025, 6, 15, 15, 0, 0, tzinfo=timezone.utc)
QUIET = {"limits": {"review_amount_cents": 10**9, "reject_amount_cents": 10**10, "review_quantity": 1000,
                    "reject_quantity": 2000},
         "velocity": [], "site_daily": {"max_orders": 10**6, "max_amount_cents": 10**12}, "new_site": {"days": 0},
         "foreign_region_action": None}


def rules(**changes) -> Rules:  # type: ignore[no-untyped-def]
    return parse_rules({**QUIET, **changes})


def candidate(amount: int = 100, quantity: int = 1, account: str | None = "p1", contact: str = "c@example.cn",
              ip: str | None = "198.51.100.7", region: str | None = "CN", regions: tuple[str, ...] = ("CN",)) -> Candidate:
    return Candidate(site_id="site-a", quantity=quantity, amount_cents=amount, account=account, contact=contact, ip=ip,
                     region=region, licence_regions=regions)


def counts(velocity: dict[str, list[int]] | None = None, orders: int = 0, amount: int = 0,
           created: datetime | None = None) -> Counts:
    return Counts(velocity or {}, orders, amount, created)


def decide(r: Rules, c: Candidate | None = None, n: Counts | None = None) -> tuple[str, list[str]]:
    d = judge(r, c or candidate(), n or counts(), NOW)
    return d.decision, d.reasons


def test_defaults_are_the_documented_ones():
    r = Rules()
    assert (r.limits.review_amount_cents, r.limits.reject_amount_cents) == (100_000, 1_000_000)
    assert (r.limits.review_quantity, r.limits.reject_quantity) == (20, 100)
    assert [(v.key, v.window_seconds, v.max_orders, v.action) for v in r.velocity] == [
        ("account", 600, 5, "review"), ("account", 3600, 30, "reject"), ("contact", 600, 10, "review"),
        ("ip", 600, 20, "review")]
    assert (r.site_daily.max_orders, r.site_daily.max_amount_cents, r.site_daily.action) == (10_000, 50_000_000, "review")
    assert (r.new_site.days, r.new_site.max_orders_per_day, r.new_site.max_amount_cents_per_order, r.new_site.action) == (
        7, 300, 50_000, "review")
    assert r.foreign_region_action == "review"
    assert decide(Rules(), candidate(amount=99_999, quantity=19)) == ("approve", [])


def test_amount_limits_are_inclusive():
    r = rules(limits={"review_amount_cents": 5_000, "reject_amount_cents": 9_000, "review_quantity": 3,
                      "reject_quantity": 6})
    assert decide(r, candidate(amount=4_999)) == ("approve", [])
    assert decide(r, candidate(amount=5_000)) == ("review", ["amount_over:5000"])
    assert decide(r, candidate(amount=8_999)) == ("review", ["amount_over:5000"])
    assert decide(r, candidate(amount=9_000)) == ("reject", ["amount_over:9000"])
    assert decide(r, candidate(quantity=2)) == ("approve", [])
    assert decide(r, candidate(quantity=3)) == ("review", ["quantity_over:3"])
    assert decide(r, candidate(quantity=5)) == ("review", ["quantity_over:3"])
    assert decide(r, candidate(quantity=6)) == ("reject", ["quantity_over:6"])
    assert decide(r, candidate(amount=5_000, quantity=6)) == ("reject", ["amount_over:5000", "quantity_over:6"])


def test_velocity_fires_at_its_maximum_with_its_own_action():
    r = rules(velocity=[{"key": "account", "window_seconds": 600, "max_orders": 3, "action": "review"},
                        {"key": "account", "window_seconds": 3600, "max_orders": 5, "action": "reject"},
                        {"key": "ip", "window_seconds": 60, "max_orders": 2, "action": "review"}])
    assert decide(r, n=counts({"account": [2, 4], "ip": [1]})) == ("approve", [])
    assert decide(r, n=counts({"account": [3, 3]})) == ("review", ["velocity_account:3/600s"])
    assert decide(r, n=counts({"account": [2, 5]})) == ("reject", ["velocity_account:5/3600s"])
    assert decide(r, n=counts({"ip": [2]})) == ("review", ["velocity_ip:2/60s"])
    assert decide(r, n=counts({"account": [3, 5], "ip": [2]})) == (
        "reject", ["velocity_account:3/600s", "velocity_account:5/3600s", "velocity_ip:2/60s"])


def test_site_daily_limits():
    r = rules(site_daily={"max_orders": 10, "max_amount_cents": 1_000, "action": "reject"})
    assert decide(r, candidate(amount=400), counts(orders=9, amount=600)) == ("approve", [])  # 600 + 400 = the maximum
    assert decide(r, candidate(amount=401), counts(orders=9, amount=600)) == ("reject", ["site_daily_amount:1000"])
    assert decide(r, candidate(amount=1), counts(orders=10)) == ("reject", ["site_daily_orders:10"])


def test_a_new_site_is_new_for_exactly_its_first_days():
    r = rules(new_site={"days": 7, "max_orders_per_day": 5, "max_amount_cents_per_order": 1_000, "action": "review"})
    seven_days_ago = datetime(2025, 6, 8, 15, 0, 0, tzinfo=timezone.utc)
    big = candidate(amount=1_001)
    assert decide(r, big, counts(created=seven_days_ago)) == ("approve", [])  # a week old: no longer new
    assert decide(r, big, counts(created=seven_days_ago + timedelta(seconds=1))) == ("review", ["new_site_amount:1000"])
    assert decide(r, big, counts(created=seven_days_ago.replace(tzinfo=None) + timedelta(seconds=1))) == (
        "review", ["new_site_amount:1000"])  # SQLite hands back naive UTC
    young = seven_days_ago + timedelta(days=6)
    assert decide(r, candidate(amount=1_000), counts(created=young)) == ("approve", [])
    assert decide(r, candidate(amount=1), counts(orders=4, created=young)) == ("approve", [])
    assert decide(r, candidate(amount=1), counts(orders=5, created=young)) == ("review", ["new_site_daily_orders:5"])
    assert decide(r, big, counts(created=None)) == ("approve", [])
    assert decide(rules(new_site={"days": 0}), big, counts(created=young)) == ("approve", [])


def test_block_lists_and_regions():
    r = rules(block={"accounts": ["bad"], "contacts": ["x@bad.cn"], "ips": ["203.0.113.0/24", "2001:db8::/32"],
                     "regions": ["KP"]}, foreign_region_action="review")
    assert decide(r, candidate(account="bad")) == ("reject", ["blocked_account"])
    assert decide(r, candidate(contact="x@bad.cn")) == ("reject", ["blocked_contact"])
    assert decide(r, candidate(ip="203.0.113.255")) == ("reject", ["blocked_ip"])
    assert decide(r, candidate(ip="203.0.114.0")) == ("approve", [])
    assert decide(r, candidate(ip="2001:db8::1")) == ("reject", ["blocked_ip"])
    assert decide(r, candidate(ip="not-an-ip")) == ("approve", [])
    assert decide(r, candidate(account=None)) == ("approve", [])
    assert decide(r, candidate(region="KP", regions=("CN", "KP"))) == ("reject", ["blocked_region"])
    assert decide(r, candidate(region="cn-GD")) == ("approve", [])  # a province of a licensed country
    assert decide(r, candidate(region="US")) == ("review", ["region_outside_licence:US"])
    assert decide(r, candidate(region="US-CA", regions=("us-ca",))) == ("approve", [])
    assert decide(r, candidate(region=None)) == ("approve", [])
    assert decide(rules(foreign_region_action="reject"), candidate(region="JP")) == ("reject", ["region_outside_licence:JP"])
    assert decide(rules(foreign_region_action=None), candidate(region="JP")) == ("approve", [])


# -- the windows, counted from the database at their edges ----------------------------------------------------

@pytest.fixture
def hq(tmp_path) -> Iterator[HQ]:
    service = open_hq(tmp_path / "hq", direct_topup="g")
    yield service
    service.close()


def received(hq: HQ, at: datetime, account: str = "p1", amount: int = 100, site: str = "site-a") -> None:
    with hq.session() as s:
        s.add(Order(hq_order_id="hq_" + uuid.uuid4().hex, site_id=site, order_id=uuid.uuid4().hex, request_sha256="x",
                    sku="g", quantity=1, unit_price_cents=amount, currency="CNY", buyer_account=account,
                    buyer_contact="c@example.cn", buyer_ip="198.51.100.7", site_created_at=at, received_at=at,
                    decision="approve", status="delivered", reasons=[]))


def test_a_velocity_window_includes_its_first_second_and_nothing_before(hq):
    received(hq, datetime(2025, 6, 15, 14, 50, 0, tzinfo=timezone.utc))  # NOW - 600 s: inside the 10-minute window
    received(hq, datetime(2025, 6, 15, 14, 49, 59, 999_000, tzinfo=timezone.utc))  # just before it
    received(hq, datetime(2025, 6, 15, 14, 0, 0, tzinfo=timezone.utc))  # NOW - 3600 s
    received(hq, datetime(2025, 6, 15, 13, 59, 59, tzinfo=timezone.utc))
    received(hq, datetime(2025, 6, 15, 14, 55, 0, tzinfo=timezone.utc), account="p2")
    windows = [VelocityRule(key="account", window_seconds=600, max_orders=9),
               VelocityRule(key="account", window_seconds=3600, max_orders=9)]
    with hq.session() as s:
        assert velocity_counts(s, windows, "account", ["p1", "p2", "p3"], NOW) == {"p1": [1, 3], "p2": [1, 1]}


def test_the_site_day_starts_at_utc_midnight(hq):
    received(hq, datetime(2025, 6, 15, 0, 0, 0, tzinfo=timezone.utc), amount=250)
    received(hq, datetime(2025, 6, 14, 23, 59, 59, 999_000, tzinfo=timezone.utc), amount=1_000)
    received(hq, datetime(2025, 6, 15, 14, 59, 0, tzinfo=timezone.utc), amount=50)
    with hq.session() as s:
        assert site_today(s, "site-a", NOW) == (2, 300)
        assert site_today(s, "site-b", NOW) == (0, 0)


# -- the rules file operators edit -----------------------------------------------------------------------------

def test_the_rules_file_is_created_reloaded_and_a_bad_edit_keeps_the_last_good_rules(tmp_path, caplog):
    import json
    import os

    from hq.risk import RuleSource
    from kitcore.errors import InvalidInput

    path = tmp_path / "risk-rules.json"
    source = RuleSource(path)
    assert source.get() == Rules() and json.loads(path.read_text()) == Rules().model_dump(mode="json")
    assert path.read_text().endswith("}\n") and not list(tmp_path.glob("*.tmp"))

    path.write_text(json.dumps({**QUIET, "limits": {**QUIET["limits"], "review_amount_cents": 777}}))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert source.get().limits.review_amount_cents == 777

    path.write_text('{"limits": ')  # an operator's half-saved edit
    os.utime(path, (1_700_000_100, 1_700_000_100))
    with caplog.at_level("ERROR", logger="hq.risk"):
        assert source.get().limits.review_amount_cents == 777
    assert "still using the previous rules" in caplog.text and "risk-rules.json is not JSON" in caplog.text

    fresh = RuleSource(path)  # no previous rules to fall back on: the error is the answer
    with pytest.raises(InvalidInput, match=r"^risk rules file risk-rules\.json is not JSON: "):
        fresh.get()


@pytest.mark.parametrize("data, message", [
    ({"limits": {"review_amount_cents": -1}}, "risk rules: limits.review_amount_cents: Input should be greater than or equal to 0"),
    ({"velocity": [{"key": "ip", "window_seconds": 2_592_001, "max_orders": 1}]},
     "risk rules: velocity.0.window_seconds: Input should be less than or equal to 2592000"),
    ({"block": {"ips": ["10.0.0.300"]}}, "risk rules: block.ips.0: "),
    ({"surprise": 1}, "risk rules: surprise: Extra inputs are not permitted"),
    ([], "risk rules: rules: Input should be a valid dictionary or instance of Rules"),
])
def test_bad_rules_are_refused_in_one_line(data, message):
    from kitcore.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        parse_rules(data)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_the_site_day_ignores_the_minutes_and_seconds_of_now(hq):
    received(hq, datetime(2025, 6, 15, 0, 0, 0, tzinfo=timezone.utc), amount=250)
    received(hq, datetime(2025, 6, 14, 23, 59, 59, tzinfo=timezone.utc), amount=1_000)
    with hq.session() as s:
        assert site_today(s, "site-a", datetime(2025, 6, 15, 15, 37, 42, 123_456, tzinfo=timezone.utc)) == (1, 250)


def test_block_lists_are_bounded_and_without_repeats():
    from kitcore.errors import InvalidInput

    assert len(parse_rules({"block": {"accounts": [f"a{i}" for i in range(1000)]}}).block.accounts) == 1000
    for accounts in ([f"a{i}" for i in range(1001)], ["a", "a"]):
        with pytest.raises(InvalidInput, match=r"^risk rules: block\.accounts"):
            parse_rules({"block": {"accounts": accounts}})
    schema = Rules.model_json_schema()["$defs"]["BlockLists"]["properties"]["accounts"]
    assert (schema["maxItems"], schema["uniqueItems"]) == (1000, True)
    r = rules(block={"ips": ["203.0.113.9/24"]})  # host bits set: still the whole network
    assert decide(r, candidate(ip="203.0.113.1")) == ("reject", ["blocked_ip"])


@pytest.mark.parametrize("field, accepted, refused", [
    # amounts in cents may be 0 (review everything) up to 10**15; a site's daily amount is at least 1 cent
    ({"limits": "review_amount_cents"}, (0, 10**15), (-1, 10**15 + 1)),
    ({"site_daily": "max_amount_cents"}, (1, 10**15), (0, 10**15 + 1)),
    ({"new_site": "max_amount_cents_per_order"}, (1, 10**15), (0,)),
    # quantities 1..10,000 units (what an order can carry); order counts 1..10,000,000
    ({"limits": "review_quantity"}, (1, 10_000), (0, 10_001)),
    ({"limits": "reject_quantity"}, (1, 10_000), (0, 10_001)),
    ({"site_daily": "max_orders"}, (1, 10_000_000), (0, 10_000_001)),
    ({"new_site": "max_orders_per_day"}, (1, 10_000_000), (0, 10_000_001)),
])
def test_each_limit_takes_exactly_its_documented_range(field, accepted, refused):
    (section, name), = field.items()
    for value in accepted:
        assert getattr(getattr(parse_rules({section: {name: value}}), section), name) == value
    for value in refused:
        with pytest.raises(InvalidInput, match=rf"^risk rules: {section}\.{name}: "):
            parse_rules({section: {name: value}})


def test_velocity_rules_number_at_most_fifty_and_act_by_review_or_reject():
    rule = {"key": "ip", "window_seconds": 60, "max_orders": 1_000}
    assert len(parse_rules({"velocity": [rule] * 50}).velocity) == 50
    with pytest.raises(InvalidInput, match=r"^risk rules: velocity: "):
        parse_rules({"velocity": [rule] * 51})
    for action in ("review", "reject"):
        assert parse_rules({"velocity": [{**rule, "action": action}]}).velocity[0].action == action
        assert parse_rules({"site_daily": {"action": action}}).site_daily.action == action
    for where in ({"velocity": [{**rule, "action": "approve"}]}, {"site_daily": {"action": "approve"}}):
        with pytest.raises(InvalidInput):
            parse_rules(where)
