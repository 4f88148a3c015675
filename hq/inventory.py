"""Card-key inventory: CSV import (secrets encrypted at rest) and atomic allocation.

Allocation takes `quantity` available keys and marks them sold in the
caller's transaction. On PostgreSQL the rows are locked with
`FOR UPDATE SKIP LOCKED`, so parallel orders take different keys without
waiting on each other; on SQLite every transaction begins IMMEDIATE (see
hq.db), so allocations run one at a time. Either way the final UPDATE only
touches rows still `available` and its row count is checked: a key is never
sold twice.
"""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hq import audit, catalog
from hq.clock import utcnow
from hq.fields import SKU_PATTERN
from hq.models import CardKey, CatalogItem
from kitcore.errors import InvalidInput

if TYPE_CHECKING:
    from hq.service import HQ

MAX_IMPORT_ROWS = 100_000
MAX_FIELD = 128
MAX_SECRET = 512


def _field(longest: int) -> str:
    """A CSV field that is not blank once its spaces are stripped: bare, or quoted (commas allowed)."""
    return (rf'( *[^",\x00-\x20\x7f][^",\x00-\x1f\x7f]{{0,{longest - 1}}}'
            rf'|"[^"\x00-\x20\x7f][^"\x00-\x1f\x7f]{{0,{longest - 1}}}" *)')


_EOL = r"(\r\n|\n|\r)"
_HEADER = r" *[Ss][Kk][Uu] *, *[Ss][Ee][Rr][Ii][Aa][Ll] *, *[Ss][Ee][Cc][Rr][Ee][Tt] *"
_ROW = rf" *{SKU_PATTERN[1:-1]} *,{_field(MAX_FIELD)},{_field(MAX_SECRET)}"
# The whole import, as /openapi.json states it; the server checks exactly this before parsing.
CSV_PATTERN = rf"^\ufeff?{_HEADER}({_EOL}( *|{_ROW}))*$"
_CSV = re.compile(CSV_PATTERN)


class TooManyRows(InvalidInput):
    status, code = 413, "too_large"


class UnknownSku(InvalidInput):
    status, code = 404, "not_found"


class NotCardKeySku(InvalidInput):
    status, code = 409, "not_card_key"


def parse_csv(text: str) -> list[tuple[str, str, str]]:
    """Rows of `sku,serial,secret` (header required); one-line error naming the bad line."""
    if not _CSV.match(text):
        raise InvalidInput(f"card-key CSV: {_first_bad_line(text)}")
    rows = [tuple(c.strip(" ") for c in row) for row in csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
            if row and any(c.strip(" ") for c in row)][1:]
    if len(rows) > MAX_IMPORT_ROWS:
        raise TooManyRows(f"card-key CSV has more than {MAX_IMPORT_ROWS} rows; split it")
    return rows  # type: ignore[return-value]


def _first_bad_line(text: str) -> str:
    """Which line breaks the format, and the format: one line for the operator."""
    lines = re.split(_EOL, text.lstrip("\ufeff"))[::2]
    if not re.fullmatch(_HEADER, lines[0]):
        return "it must start with the header: sku,serial,secret"
    for lineno, line in enumerate(lines[1:], start=2):
        if not re.fullmatch(rf"( *|{_ROW})", line):
            return (f"line {lineno}: expected sku,serial,secret (a catalog SKU, a serial of at most {MAX_FIELD} "
                    f"and a secret of at most {MAX_SECRET} printable characters, not blank; quoted fields hold no quote)")
    return "it is not valid CSV"


def import_csv(hq: "HQ", operator: str, text: str) -> dict[str, Any]:
    """Import card keys; all or nothing. Serials already present for the SKU are skipped."""
    rows = parse_csv(text)
    with hq.session() as session:
        skus = {r[0] for r in rows}
        items = {i.sku: i for i in session.scalars(select(CatalogItem).where(CatalogItem.sku.in_(skus)))}
        for sku in sorted(skus):
            item = items.get(sku)
            if item is None or item.deleted:
                raise UnknownSku(f"card-key CSV: sku {sku!r} is not in the catalog")
            if item.stock_kind != "card_key":
                raise NotCardKeySku(f"card-key CSV: sku {sku!r} is a direct top-up, it has no card keys")
        existing = set(session.execute(select(CardKey.sku, CardKey.serial).where(CardKey.sku.in_(skus))).all())
        now, added, skipped = utcnow(), 0, 0
        for sku, serial, secret in rows:
            if (sku, serial) in existing:
                skipped += 1
                continue
            existing.add((sku, serial))
            session.add(CardKey(sku=sku, serial=serial, secret_enc=hq.vault.encrypt(secret, context=f"{sku}:{serial}"),
                                status="available", imported_at=now))
            added += 1
        session.flush()
        for sku in skus:
            catalog.bump(session, sku)
        audit.record(session, operator, "inventory.import", None, added=added, skipped=skipped, skus=sorted(skus))
    if added >= ANALYZE_AFTER and hq.engine.dialect.name == "postgresql":
        _analyze_card_keys(hq)
    return {"added": added, "skipped": skipped, "skus": sorted(skus)}


ANALYZE_AFTER = 1000  # keys in one import


def _analyze_card_keys(hq: "HQ") -> None:
    """Refresh the planner's statistics after a bulk import, as PostgreSQL advises after bulk loads.

    Until autovacuum gets to it, the catalog feed's stock counts are planned
    without knowing how the keys spread over SKUs (measured: 23 ms a page of 500
    instead of 2 ms, with 50,000 new keys).
    """
    with hq.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE card_keys")


def allocate(session: Session, sku: str, quantity: int, order_pk: int) -> bool:
    """Mark `quantity` available keys of `sku` sold to the order; False if there are not enough."""
    ids = list(session.scalars(
        select(CardKey.id)
        .where(CardKey.sku == sku, CardKey.status == "available")
        .order_by(CardKey.id)
        .limit(quantity)
        .with_for_update(skip_locked=True)
    ))
    if len(ids) < quantity:
        return False
    result = session.execute(
        update(CardKey)
        .where(CardKey.id.in_(ids), CardKey.status == "available")
        .values(status="sold", order_pk=order_pk, sold_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != quantity:  # cannot happen under the locks above; refuse rather than double-sell
        raise RuntimeError("card-key allocation raced; transaction rolled back")
    return True


def delivered_keys(hq: "HQ", session: Session, order_pk: int) -> list[dict[str, str]]:
    keys = session.scalars(select(CardKey).where(CardKey.order_pk == order_pk).order_by(CardKey.id))
    return [{"serial": k.serial, "secret": hq.vault.decrypt(k.secret_enc, context=f"{k.sku}:{k.serial}")} for k in keys]
