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


def test_only_spaces_are_trimmed_and_a_row_of_letters_is_a_row():
    text = "sku,serial,secret\nX,XX,X\n   \nXk, X1X ,xX \n"  # a line of spaces is a blank line
    assert inventory.parse_csv(text) == [("X", "XX", "X"), ("Xk", "X1X", "xX")]
    # other white space is part of a serial or secret, and a byte-order mark is dropped only at the start
    assert inventory.parse_csv("\ufeffsku,serial,secret\ng,S1\xa0,\u3000k\u3000\ng,S2,k\ufeff") == [
        ("g", "S1\xa0", "\u3000k\u3000"), ("g", "S2", "k\ufeff")]


@pytest.mark.parametrize("text", ["", "sku,serial\ng,1,2\n", "g,1,2\n", "sku;serial;secret\n", "\n\nsku,serial,secret\n",
                                  "Xsku,serial,secret\ng,1,2\n"])
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


# -- importing: all or nothing, per SKU, serials already there skipped ----------------------------------------

def test_an_import_refuses_skus_without_card_keys_whole_and_skips_serials_already_there(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from sqlalchemy import select

    from hq import catalog
    from hq.models import AuditEvent, CardKey
    from tests.hq.helpers import open_hq

    hq = open_hq(tmp_path / "hq", card_keys=2)  # card-1: S0000, S0001
    try:
        spec = catalog.ItemSpec(name="x", category="game", face_value_cents=100, price_cents=90)
        catalog.upsert(hq, "t", "card-2", spec)
        catalog.upsert(hq, "t", "card-gone", spec)
        catalog.remove(hq, "t", "card-gone")
        catalog.upsert(hq, "t", "topup", catalog.ItemSpec(name="x", category="game", face_value_cents=100,
                                                          price_cents=90, stock_kind="direct_topup"))
        refusals = {"card-gone": (404, "not_found", "card-key CSV: sku 'card-gone' is not in the catalog"),
                    "card-new": (404, "not_found", "card-key CSV: sku 'card-new' is not in the catalog"),
                    "topup": (409, "not_card_key", "card-key CSV: sku 'topup' is a direct top-up, it has no card keys")}
        for sku, expected in refusals.items():  # the HTTP status and code the stock API answers with
            with pytest.raises(InvalidInput) as refused:
                inventory.import_csv(hq, "op", f"sku,serial,secret\ncard-2,N1,n\n{sku},Z1,z\n")
            assert (refused.value.status, refused.value.code, str(refused.value)) == expected
        at = datetime(2025, 7, 1, 9, 0, 0, tzinfo=timezone.utc)
        monkeypatch.setattr(inventory, "utcnow", lambda: at)
        got = inventory.import_csv(hq, "op", "sku,serial,secret\ncard-1,S0001,again\ncard-1,S0002,new\n"
                                             "card-2,S0001,other-sku\ncard-2,S0001,twice\n")
        assert got == {"added": 2, "skipped": 2, "skus": ["card-1", "card-2"]}
        with hq.session() as s:
            keys = {(k.sku, k.serial): (k.status, hq.vault.decrypt(k.secret_enc, context=f"{k.sku}:{k.serial}"),
                                        k.imported_at.replace(tzinfo=timezone.utc))
                    for k in s.scalars(select(CardKey).where(CardKey.serial != "S0000"))}
            audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "inventory.import")
                              .order_by(AuditEvent.id.desc())).first()
        assert keys[("card-1", "S0001")][:2] == ("available", "x1")  # the key already there is kept as it was
        assert keys[("card-1", "S0002")] == ("available", "new", at)
        assert keys[("card-2", "S0001")] == ("available", "other-sku", at)
        assert (audit.operator, audit.detail) == ("op", {"added": 2, "skipped": 2, "skus": ["card-1", "card-2"]})
        assert sorted(k for k in keys if k[0] == "card-2") == [("card-2", "S0001")]  # nothing of the refused imports
    finally:
        hq.close()


def test_an_import_holds_at_most_100000_keys():
    """A larger file is refused whole (413, split it): the limit keeps one import inside one transaction's size."""
    rows = "".join(f"g,S{i},k\n" for i in range(100_000))
    assert len(inventory.parse_csv("sku,serial,secret\n" + rows + "\n")) == 100_000
    with pytest.raises(inventory.TooManyRows) as refused:
        inventory.parse_csv("sku,serial,secret\n" + rows + "g,S-last,k\n")
    assert (refused.value.status, refused.value.code, str(refused.value)) == (
        413, "too_large", "card-key CSV has more than 100000 rows; split it")


def test_an_import_moves_the_imported_skus_on_in_the_sites_catalog_feed_and_no_other(tmp_path):
    """Sites learn of new stock from the item's version: each imported SKU gets a newer one, others keep theirs."""
    from hq import catalog
    from hq.models import CatalogItem
    from tests.hq.helpers import open_hq

    hq = open_hq(tmp_path / "hq", card_keys=1)
    try:
        spec = catalog.ItemSpec(name="x", category="game", face_value_cents=100, price_cents=90)
        for sku in ("card-2", "card-3"):
            catalog.upsert(hq, "t", sku, spec)

        def versions() -> dict[str, int]:
            with hq.session() as s:
                return {i.sku: i.version for i in s.query(CatalogItem)}

        before = versions()
        inventory.import_csv(hq, "op", "sku,serial,secret\ncard-1,N1,n\ncard-2,N1,n\n")
        after = versions()
        assert after["card-1"] > before["card-1"] and after["card-2"] > before["card-2"]
        assert after["card-3"] == before["card-3"]
    finally:
        hq.close()
