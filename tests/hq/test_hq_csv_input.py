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


# -- the card-key CSV at its limits, and the one line that names the bad line -------------------------------

HEADER_REFUSED = "card-key CSV: it must start with the header: sku,serial,secret"


def bad_line(n: int) -> str:
    return (f"card-key CSV: line {n}: expected sku,serial,secret (a catalog SKU, a serial of at most 128 and a secret "
            "of at most 512 printable characters, not blank; quoted fields hold no quote)")


def refusal(text: str) -> str:
    with pytest.raises(InvalidInput) as refused:
        inventory.parse_csv(text)
    return str(refused.value)


def test_rows_are_read_with_their_spaces_trimmed_header_in_any_case_bom_allowed():
    text = "\ufeff SKU , Serial,SECRET \r\n g1 , S1 , x 1 \n\ng2,\"S,2\",\"y\"\rg3,S3,z\n"
    assert inventory.parse_csv(text) == [("g1", "S1", "x 1"), ("g2", "S,2", "y"), ("g3", "S3", "z")]


@pytest.mark.parametrize("text", ["", "sku,serial\ng,1,2\n", "g,1,2\n", "sku;serial;secret\n", "\n\nsku,serial,secret\n"])
def test_the_header_comes_first(text):
    assert refusal(text) == HEADER_REFUSED


@pytest.mark.parametrize("text, line", [
    ("sku,serial,secret\ng,1\n", 2),
    ("sku,serial,secret\r\ng,1,2\r\n\r\ng,1,2,3\r\n", 4),
    ("sku,serial,secret\rg,1,2\rg,,2\r", 3),
    ("\ufeffsku,serial,secret\ng,1,2\ng,1, \n", 3),
    ("sku,serial,secret\ng,\"1\"2\",3\n", 2),
    ("sku,serial,secret\nbad sku,1,2\n", 2),
])
def test_the_first_bad_line_is_named(text, line):
    assert refusal(text) == bad_line(line)


def test_field_lengths_at_their_limits():
    for serial, secret in (("s" * 128, "x" * 512), ('"' + "s" * 128 + '"', '"' + "x" * 512 + '"')):
        assert inventory.parse_csv(f"sku,serial,secret\ng,{serial},{secret}\n") == [("g", serial.strip('"'), secret.strip('"'))]
    for serial, secret in (("s" * 129, "x"), ("s", "x" * 513), ('"' + "s" * 129 + '"', "x"), ("s", '"' + "x" * 513 + '"')):
        assert refusal(f"sku,serial,secret\ng,{serial},{secret}\n") == bad_line(2)


def test_text_that_passes_line_by_line_but_not_as_a_whole():
    assert refusal("\ufeff\ufeffsku,serial,secret\ng,1,2\n") == "card-key CSV: it is not valid CSV"  # two BOMs
