"""Regional pricing: region and night-window rules on top of the site's price, clamped at HQ's."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from kitcore.errors import InvalidInput
from kitcore.licence.tiers import TIERS
from plugins.host import PluginHost
from kitctl.siteplugins import SiteLicence, configure
from tests.plugins.helpers import checkout_ctx, place_order
from kitcore.sitedir import SiteDir

FLAGSHIP = SiteLicence("flagship", TIERS["flagship"].features)
RULES = [
    {"name": "night", "start": "22:00", "end": "06:00", "timezone": "Asia/Shanghai", "percent_off": 10},
    {"name": "guangdong", "regions": ["cn-gd"], "categories": ["game"], "fixed_off_cents": 300},
]


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, 1, hour, minute, tzinfo=timezone.utc)


@pytest.fixture
def host(site_dir) -> PluginHost:
    configure(site_dir, "regional-pricing", [f"rules={json.dumps(RULES)}"], FLAGSHIP)
    loaded = PluginHost.load(TIERS["flagship"].features, config_dir=site_dir)
    assert "regional-pricing" in loaded.loaded, loaded.refused
    return loaded


def test_night_discount_wraps_midnight_in_the_rules_time_zone(engine, host):
    ctx = dict(buyer_region="CN-BJ", hq_price_cents=1)
    at_23_shanghai, _ = place_order(engine, host, checkout_ctx(now=utc(15), **ctx))  # 23:00 in Shanghai
    at_05_shanghai, _ = place_order(engine, host, checkout_ctx(now=utc(21), **ctx))  # 05:00
    at_06_shanghai, _ = place_order(engine, host, checkout_ctx(now=utc(22), **ctx))  # 06:00: over
    at_noon, _ = place_order(engine, host, checkout_ctx(now=utc(4), **ctx))
    assert at_23_shanghai["discount_cents"] == 2_000 and at_23_shanghai["extras"]["regional-pricing"]["rule"] == "night"
    assert at_05_shanghai["discount_cents"] == 2_000
    assert at_06_shanghai["discount_cents"] == 0 and at_noon["discount_cents"] == 0


def test_region_rule_applies_only_to_its_region_and_category_and_the_best_rule_wins(engine, host):
    gd_day, _ = place_order(engine, host, checkout_ctx(buyer_region="cn-gd", now=utc(4), hq_price_cents=1))
    gd_phone, _ = place_order(engine, host, checkout_ctx(buyer_region="CN-GD", category="phone", now=utc(4), hq_price_cents=1))
    gd_night, _ = place_order(engine, host, checkout_ctx(buyer_region="CN-GD", now=utc(16), hq_price_cents=1))
    nowhere, _ = place_order(engine, host, checkout_ctx(buyer_region=None, now=utc(4), hq_price_cents=1))
    assert gd_day["discount_cents"] == 600  # 3.00 per unit x 2
    assert gd_phone["discount_cents"] == 0
    assert gd_night["discount_cents"] == 2_000 and gd_night["extras"]["regional-pricing"]["rule"] == "night"  # no stacking
    assert nowhere["discount_cents"] == 0


def test_the_host_floor_limits_a_regional_discount(engine, host):
    adjustment, _ = place_order(engine, host, checkout_ctx(now=utc(15), unit_price_cents=10_000, hq_price_cents=9_500))
    assert adjustment["discount_cents"] == 1_000  # 10 % would be 2 000; floor is 2 x 95.00


@pytest.mark.parametrize("bad, message", [
    ([{"name": "x", "start": "22:00", "percent_off": 10}], "give both start and end"),
    ([{"name": "x", "percent_off": 95}], "less than or equal to 90"),
    ([{"name": "x", "timezone": "Mars/Base", "percent_off": 5}], "unknown time zone"),
    ([{"name": "x"}], "give percent_off or fixed_off_cents"),
])
def test_bad_rules_are_refused_with_one_line_and_nothing_changes(site_dir, bad, message):
    with pytest.raises(InvalidInput, match=message):
        configure(site_dir, "regional-pricing", [f"rules={json.dumps(bad)}"], FLAGSHIP)
    assert not SiteDir(site_dir).plugins_toml.exists()
