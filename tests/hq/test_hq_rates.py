"""Rates as data: most specific first, in force from their day, never retroactive, refused with one line."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Iterator

import pytest

from hq.clock import utcnow
from hq.ledger import rates
from hq.service import HQ
from kitcore.errors import InvalidInput
from tests.hq.ledger_support import open_settlement_hq

TODAY = date(2027, 3, 10)


def _rates(rows: dict) -> rates.Rates:
    return rates.Rates(TODAY, rows)


def test_share_resolution_most_specific_first():
    table = _rates({("share_bps", "pro", "game"): 900, ("share_bps", None, "game"): 1000,
                    ("share_bps", "pro", None): 1100})
    assert table.share_bps("pro", "game", 1200) == 900
    assert table.share_bps("basic", "game", 1500) == 1000
    assert table.share_bps("pro", "phone", 1200) == 1100
    assert table.share_bps("basic", "phone", 1500) == 1500  # the licence's own rate


def test_defaults_and_tier_base_fee():
    table = _rates({("base_fee", "flagship", None): 900_000, ("min_payout", None, None): 5_000})
    assert table.base_fee("flagship") == 900_000
    assert table.base_fee("basic") == rates.DEFAULTS["base_fee"]
    assert table.min_payout() == 5_000 and table.payout_fee() == rates.DEFAULTS["payout_fee"]


@pytest.mark.parametrize("gross,bps,share", [(4700, 1500, 705), (1, 1500, 0), (4, 1250, 1), (10_000, 10_000, 10_000),
                                             (333, 1500, 50)])
def test_share_is_rounded_half_up_in_whole_fen(gross, bps, share):
    assert rates.share_fen(gross, bps) == share


@pytest.mark.parametrize("kind,value,day,tier,category,message", [
    ("share_bps", 800, TODAY, None, "game", "never retroactively"),
    ("share_bps", 800, TODAY - timedelta(days=3), None, None, "never retroactively"),
    ("share", 800, TODAY + timedelta(days=1), None, None, "unknown"),
    ("share_bps", 10_001, TODAY + timedelta(days=1), None, None, "0 to 10000"),
    ("payout_fee", -1, TODAY + timedelta(days=1), None, None, "0 to"),
    ("base_fee", 1, TODAY + timedelta(days=1), None, "game", "does not vary by category"),
    ("min_payout", 1, TODAY + timedelta(days=1), "pro", None, "does not vary by tier"),
    ("share_bps", 1, TODAY + timedelta(days=1), "gold", None, "tier 'gold' is unknown"),
    ("share_bps", 1, TODAY + timedelta(days=1), None, "cars", "category 'cars' is unknown"),
])
def test_bad_rates_are_refused_with_one_line(kind, value, day, tier, category, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        rates.validate(kind, value, day, tier, category, TODAY)
    assert "\n" not in str(caught.value)


@pytest.fixture
def hq(tmp_path) -> Iterator[HQ]:
    service = open_settlement_hq(tmp_path / "hq", None)
    yield service
    service.close()


def test_a_rate_applies_from_its_day_and_the_old_one_before(hq):
    start = utcnow().date() + timedelta(days=2)
    rates.set_rate(hq, "op", "share_bps", 700, start, tier="pro")
    rates.set_rate(hq, "op", "share_bps", 600, start + timedelta(days=5), tier="pro")
    with pytest.raises(InvalidInput):
        rates.set_rate(hq, "op", "share_bps", 1, utcnow().date(), tier="pro")
    at = datetime.combine(start, datetime.min.time(), tzinfo=timezone.utc)
    with hq.read() as conn:
        assert rates.in_force(conn, at - timedelta(seconds=1)).share_bps("pro", "game", 1200) == 1200
        assert rates.in_force(conn, at).share_bps("pro", "game", 1200) == 700
        assert rates.in_force(conn, at + timedelta(days=5)).share_bps("pro", "game", 1200) == 600
    assert [r["value"] for r in rates.list_rates(hq)] == [700, 600]
