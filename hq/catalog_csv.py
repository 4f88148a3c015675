"""Catalog items from CSV, for `kitctl hq catalog import` (card keys are in hq.inventory)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hq import catalog
from hq.errors import ApiError
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from hq.service import HQ

REQUIRED = ("sku", "name", "category", "face_value_cents", "price_cents")
OPTIONAL = ("stock_kind", "account_pattern", "min_qty", "max_qty", "status")
NUMBERS = ("face_value_cents", "price_cents", "min_qty", "max_qty")


def _typed(column: str, value: str) -> Any:
    """CSV holds text; the API's strict integers take a number, so a column of digits becomes one."""
    if column in NUMBERS and value.lstrip("-").isdigit() and value.isascii():
        return int(value)
    return value


def is_card_key_csv(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    return [h.strip().lower() for h in first.split(",")] == ["sku", "serial", "secret"]


def parse_items(text: str) -> list[tuple[str, catalog.ItemSpec]]:
    """(sku, spec) per row, all validated before anything is written."""
    try:
        return _parse_items(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InvalidInput(f"catalog CSV is not valid CSV: {exc}") from None


def _parse_items(reader: "csv.DictReader[str]") -> list[tuple[str, catalog.ItemSpec]]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        raise InvalidInput(f"catalog CSV header: missing {missing}, unknown {unknown} "
                           f"(columns: {', '.join(REQUIRED + OPTIONAL)}; or sku,serial,secret for card keys)")
    items = []
    for lineno, row in enumerate(reader, start=2):
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        sku = values.pop("sku")
        try:
            catalog.validate_sku(sku)
            data: dict[str, Any] = {k: _typed(k, v) for k, v in values.items() if v != ""}
            items.append((sku, catalog.ItemSpec.model_validate(data)))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InvalidInput(f"catalog CSV line {lineno}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        except ApiError as exc:
            raise InvalidInput(f"catalog CSV line {lineno}: {exc.detail}") from None
    return items


def import_items(hq: "HQ", operator: str, text: str) -> dict[str, Any]:
    items = parse_items(text)
    catalog.upsert_many(hq, operator, items)
    return {"upserted": len(items), "skus": [s for s, _ in items]}
