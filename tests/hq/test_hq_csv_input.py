"""CSV imports refuse malformed CSV with a one-line InvalidInput (never a 500)."""

from __future__ import annotations

import pytest

from hq import catalog_csv, inventory
from kitcore.errors import InvalidInput


@pytest.mark.parametrize("text", ['sku,serial,secret\n"a\x00,b,c\n', 'sku,serial,secret\na,"b"x"\n'])
def test_card_key_csv_bad_quoting_is_invalid_input(text):
    with pytest.raises(InvalidInput) as err:
        inventory.parse_csv(text)
    assert "\n" not in str(err.value)


def test_card_key_csv_with_bare_carriage_returns_still_parses():
    assert inventory.parse_csv("sku,serial,secret\ra,b,c\r") == [("a", "b", "c")]


def test_catalog_csv_bad_quoting_is_invalid_input():
    with pytest.raises(InvalidInput):
        catalog_csv.parse_items('sku,name,category,face_value_cents,price_cents\n"x\x00,n,game,1,1\n')
