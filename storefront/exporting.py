"""The licensee's exit export: the site's business data as CSV and JSON files in one checksummed tar stream.

`python -m storefront export` (what `kitctl export` runs in the storefront
container) writes the tar to stdout; kitctl unpacks it on the host. Files:
orders (buyers' contact and account opened with the site key, never order
passwords, buyer IPs or card keys), HQ's statements and ledger entries as the
site holds them, the catalog and the price rules — each as `NAME.csv` (UTF-8
with BOM, formulas neutralised, as the admin's orders CSV) and `NAME.json` (an
array of objects). `manifest.json` says what each file holds; `SHA256SUMS`
(the `sha256sum -c` format) checks every other file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import Table, select

from sitedb.models import Order
from sitedb.tables import catalog_items, price_rules, settlement_entries, settlement_statements, site_state
from storefront.admin.reports import CSV_COLUMNS, _cell, opened_buyer

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from sitedb.buyer import BuyerBox

FORMAT = "kitctl site export v1"
SPOOL = 8 * 1024 * 1024  # a file bigger than this waits on disk, not in memory, until it goes into the tar
# the tables exported as they are: name, table, columns (None: all), order
PLAIN: tuple[tuple[str, Table, tuple[str, ...] | None, str], ...] = (
    ("statements", settlement_statements, None, "id"),
    ("ledger", settlement_entries, None, "id"),
    ("catalog", catalog_items, ("sku", "name", "category", "face_value_cents", "hq_price_cents", "price_cents",
                                "currency", "stock_kind", "min_qty", "max_qty", "stock", "status", "updated_at"), "sku"),
    ("price_rules", price_rules, None, "id"),
)


@dataclass
class Written:
    name: str
    rows: int
    sha256: str
    size: int


def _text(value: Any) -> Any:
    """JSON: times as ISO 8601 UTC, days as ISO dates; everything else as it is."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _csv_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _cell(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return _cell(_text(value))


def order_records(session: "Session", buyers: "BuyerBox | None") -> Iterator[dict[str, Any]]:
    """Every order, oldest first, with the columns of the admin's orders CSV (buyers opened when the key is here)."""
    for order in session.scalars(select(Order).order_by(Order.created_at, Order.id).execution_options(yield_per=500)):
        buyer = opened_buyer(order, buyers)
        opened = {"buyer_account": buyer.account if buyer else None, "buyer_contact": buyer.contact if buyer else None}
        yield {c: opened[c] if c in opened else getattr(order, c) for c in CSV_COLUMNS}


def table_records(session: "Session", table: Table, columns: tuple[str, ...] | None,
                  order_by: str) -> Iterator[dict[str, Any]]:
    chosen = [table.c[c] for c in columns] if columns else list(table.c)
    query = select(*chosen).order_by(table.c[order_by]).execution_options(yield_per=1000)
    for row in session.execute(query):
        yield dict(row._mapping)


def _spool(name: str, columns: list[str], records: Iterator[dict[str, Any]]) -> tuple[Any, Any, int]:
    """The records as CSV and as a JSON array, each in a spooled file; the row count."""
    as_csv = tempfile.SpooledTemporaryFile(max_size=SPOOL)
    as_json = tempfile.SpooledTemporaryFile(max_size=SPOOL)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    as_csv.write(("\ufeff" + text.getvalue()).encode())
    as_json.write(b"[")
    rows = 0
    for record in records:
        text.seek(0)
        text.truncate()
        writer.writerow([_csv_value(record.get(c)) for c in columns])
        as_csv.write(text.getvalue().encode())
        item = json.dumps({c: _text(record.get(c)) for c in columns}, ensure_ascii=False, sort_keys=False)
        as_json.write((",\n" if rows else "\n").encode() + item.encode())
        rows += 1
    as_json.write(b"\n]\n")
    return as_csv, as_json, rows


def _add(archive: tarfile.TarFile, name: str, data: IO[bytes], stamp: float) -> Written:
    size = data.tell()
    data.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: data.read(1 << 20), b""):
        digest.update(block)
    data.seek(0)
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(stamp)
    archive.addfile(info, data)
    return Written(name, 0, digest.hexdigest(), size)


def write_archive(engine: "Engine", buyers: "BuyerBox | None", out: IO[bytes],
                  now: Callable[[], float] = time.time) -> list[Written]:
    """The whole export as an uncompressed tar stream on `out`; what went in (manifest and sums last)."""
    from sqlalchemy.orm import Session

    stamp = now()
    written: list[Written] = []
    with Session(engine) as session, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        site = session.scalar(select(site_state.c.site_id).where(site_state.c.id == 1))
        sources: list[tuple[str, list[str], Iterator[dict[str, Any]]]] = [
            ("orders", list(CSV_COLUMNS), order_records(session, buyers))]
        for name, table, columns, order_by in PLAIN:
            sources.append((name, list(columns or table.c.keys()), table_records(session, table, columns, order_by)))
        for name, columns, records in sources:
            as_csv, as_json, rows = _spool(name, columns, records)
            for suffix, data in (("csv", as_csv), ("json", as_json)):
                entry = _add(archive, f"{name}.{suffix}", data, stamp)
                entry.rows = rows
                written.append(entry)
                data.close()
        manifest = {"format": FORMAT, "site": site, "created_at": _text(datetime.fromtimestamp(stamp, timezone.utc)),
                    "files": {w.name: {"rows": w.rows, "bytes": w.size, "sha256": w.sha256} for w in written},
                    "notes": "money in fen (CNY cents); times in UTC; buyers' passwords, IPs and card keys are "
                             "never exported"}
        written.append(_add(archive, "manifest.json", _bytes(json.dumps(manifest, ensure_ascii=False, indent=2)),
                            stamp))
        sums = "".join(f"{w.sha256}  {w.name}\n" for w in written)
        written.append(_add(archive, "SHA256SUMS", _bytes(sums), stamp))
    return written


def _bytes(text: str) -> IO[bytes]:
    data = io.BytesIO((text + ("" if text.endswith("\n") else "\n")).encode())
    data.seek(0, io.SEEK_END)
    return data


def main(args: list[str]) -> int:
    """`python -m storefront export`: the tar on stdout; errors one line on stderr, exit 2."""
    import sys

    from sqlalchemy.exc import DBAPIError

    from sitedb.buyer import BuyerBox
    from sitedb.engine import make_engine
    from storefront.settings import StorefrontSettings

    if args:
        print("usage: python -m storefront export", file=sys.stderr)
        return 2
    try:
        settings = StorefrontSettings()
        key = settings.site_key()
        engine = make_engine(settings.resolved_database_url())
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        write_archive(engine, BuyerBox(key) if key else None, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except DBAPIError as exc:
        print(f"error: the site database: {str(exc.orig).strip().splitlines()[0][:200]}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0
