"""Exit-export archives: records as CSV and JSON files in one tar stream, with a manifest and SHA256SUMS.

Both exports of a site's business data write this format: the licensee's
(`kitctl export`, from the storefront) and HQ's (`kitctl hq export`, from
HQ's side). Each source becomes `NAME.csv` (UTF-8 with BOM, LF, text that a
spreadsheet would run as a formula prefixed with `'`) and `NAME.json` (an
array of objects; times ISO 8601 UTC); `manifest.json` says what each file
holds, and `SHA256SUMS` (the `sha256sum -c` format) checks every other file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import IO, Any, Iterable, Iterator

SPOOL = 8 * 1024 * 1024  # a file bigger than this waits on disk, not in memory, until it goes into the tar
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"


@dataclass
class Written:
    name: str
    rows: int
    sha256: str
    size: int


@dataclass(frozen=True)
class Source:
    """One exported table: its file name (without suffix), its columns, its records."""

    name: str
    columns: list[str]
    records: Iterator[dict[str, Any]]


def json_value(value: Any) -> Any:
    """JSON: times as ISO 8601 UTC, days as ISO dates; everything else as it is."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def guard_formula(text: str) -> str:
    """Text a spreadsheet would run as a formula, prefixed with a quote so it is shown instead."""
    return "'" + text if text[:1] in FORMULA_START else text


def csv_value(value: Any) -> str:
    """A CSV cell: numbers as they are (a negative amount is a number, not a formula), text guarded."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (dict, list)):
        return guard_formula(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return guard_formula(str(json_value(value)))


def spool(columns: list[str], records: Iterable[dict[str, Any]]) -> tuple[Any, Any, int]:
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
        writer.writerow([csv_value(record.get(c)) for c in columns])
        as_csv.write(text.getvalue().encode())
        item = json.dumps({c: json_value(record.get(c)) for c in columns}, ensure_ascii=False)
        as_json.write((",\n" if rows else "\n").encode() + item.encode())
        rows += 1
    as_json.write(b"\n]\n")
    return as_csv, as_json, rows


def add(archive: tarfile.TarFile, name: str, data: IO[bytes], stamp: float) -> Written:
    """`data` (written up to its current position) into the archive as `name`, mode 0600."""
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


def _text_file(text: str) -> IO[bytes]:
    data = io.BytesIO((text + ("" if text.endswith("\n") else "\n")).encode())
    data.seek(0, io.SEEK_END)
    return data


def write(out: IO[bytes], sources: Iterable[Source], manifest: dict[str, Any], stamp: float) -> list[Written]:
    """The archive as an uncompressed tar stream on `out`: every source as CSV and JSON, the manifest
    (`manifest` plus `created_at` and each file's rows, bytes and SHA-256), then SHA256SUMS. What went in."""
    written: list[Written] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for source in sources:
            as_csv, as_json, rows = spool(source.columns, source.records)
            for suffix, data in (("csv", as_csv), ("json", as_json)):
                entry = add(archive, f"{source.name}.{suffix}", data, stamp)
                entry.rows = rows
                written.append(entry)
                data.close()
        whole = {**manifest, "created_at": json_value(datetime.fromtimestamp(stamp, timezone.utc)),
                 "files": {w.name: {"rows": w.rows, "bytes": w.size, "sha256": w.sha256} for w in written}}
        written.append(add(archive, MANIFEST, _text_file(json.dumps(whole, ensure_ascii=False, indent=2)), stamp))
        sums = "".join(f"{w.sha256}  {w.name}\n" for w in written)
        written.append(add(archive, SUMS, _text_file(sums), stamp))
    return written
