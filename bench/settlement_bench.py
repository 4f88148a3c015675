"""Benchmark settlement: a monthly statement for a site with 1,000,000 orders in the month.

    python bench/settlement_bench.py                         # PostgreSQL (throwaway cluster)
    python bench/settlement_bench.py --orders 100000 --db sqlite
    python bench/settlement_bench.py --database-url postgresql://...

The ledger rows are bulk-loaded straight into the tables (COPY on
PostgreSQL): per order one entry and its six lines, exactly as
`hq.ledger.events.order_paid` writes them, plus `--noise` orders of another
site in the same month and `--previous` orders of the site in the month
before (they make the opening balance). Then it times issuing the statement
(figures and the CSV's SHA-256: one pass over the month), exporting the
CSV to a file and rendering the PDF, and checks the figures against what
was loaded.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MONTH = date(2026, 10, 1)
GROSS, COST, QTY = 9_900, 9_000, 1
SHARE_BPS = 1200  # the pro licence's rate


def _entries(site: str, first_id: int, count: int, start: datetime, span: timedelta) -> Iterator[tuple[Any, ...]]:
    """(id, site, posted_at, hq_order_id, order_id) spread evenly over the span."""
    step = span / max(count, 1)
    for n in range(count):
        yield first_id + n, site, start + step * n, f"hq_{site}_{first_id + n}", f"o{first_id + n}"


def _lines(entry_id: int, site: str, share: int) -> list[tuple[int, str, str, int]]:
    account = f"site:{site}"
    return [(entry_id, "hq:clearing", "gross", GROSS), (entry_id, account, "gross", -GROSS),
            (entry_id, account, "hq_cost", COST), (entry_id, "hq:cost", "hq_cost", -COST),
            (entry_id, account, "hq_share", share), (entry_id, "hq:share", "hq_share", -share)]


def load(service: Any, batches: list[tuple[str, int, datetime, timedelta]]) -> float:
    """Bulk-load the order entries; seconds taken."""
    from hq.ledger import accounts
    from hq.ledger.rates import share_fen

    share = share_fen(GROSS * QTY, SHARE_BPS)
    began = time.perf_counter()
    with service.connection() as conn:
        accounts.ensure(conn, [*accounts.HQ_ACCOUNTS, *(accounts.site_account(b[0]) for b in batches)])
    next_id = 1
    for site, count, start, span in batches:
        rows = list(_entries(site, next_id, count, start, span))
        if service.engine.dialect.name == "postgresql":
            _copy(service, rows, share)
        else:
            _executemany(service, rows, share)
        next_id += count
    if service.engine.dialect.name == "postgresql":
        with service.engine.begin() as conn:
            conn.exec_driver_sql("SELECT setval('ledger_entries_id_seq', (SELECT max(id) FROM ledger_entries))")
            conn.exec_driver_sql("SELECT setval('ledger_lines_id_seq', (SELECT max(id) FROM ledger_lines))")
        with service.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE ledger_entries")
            conn.exec_driver_sql("ANALYZE ledger_lines")
    return time.perf_counter() - began


def _copy(service: Any, rows: list[tuple[Any, ...]], share: int) -> None:
    raw = service.engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, columns, text in (("ledger_entries", "id, site_id, kind, source, posted_at, memo",
                                      _entry_text(rows)),
                                     ("ledger_lines", "entry_id, account, role, amount_fen", _line_text(rows, share))):
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for chunk in text:
                    copy.write(chunk)
        raw.commit()
    finally:
        raw.close()


def _entry_text(rows: list[tuple[Any, ...]]) -> Iterator[str]:
    buf = io.StringIO()
    for n, (i, site, at, source, memo) in enumerate(rows, 1):
        buf.write(f"{i}\t{site}\torder\t{source}\t{at.isoformat()}\t{memo}\n")
        if n % 100_000 == 0:
            yield buf.getvalue()
            buf = io.StringIO()
    yield buf.getvalue()


def _line_text(rows: list[tuple[Any, ...]], share: int) -> Iterator[str]:
    buf = io.StringIO()
    for n, (i, site, *_rest) in enumerate(rows, 1):
        for entry_id, account, role, amount in _lines(i, site, share):
            buf.write(f"{entry_id}\t{account}\t{role}\t{amount}\n")
        if n % 50_000 == 0:
            yield buf.getvalue()
            buf = io.StringIO()
    yield buf.getvalue()


def _executemany(service: Any, rows: list[tuple[Any, ...]], share: int) -> None:
    with service.engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor()
        cur.executemany("INSERT INTO ledger_entries (id, site_id, kind, source, posted_at, memo) "
                        "VALUES (?, ?, 'order', ?, ?, ?)",
                        ((i, site, source, at.strftime("%Y-%m-%d %H:%M:%S.%f"), memo)
                         for i, site, at, source, memo in rows))
        cur.executemany("INSERT INTO ledger_lines (entry_id, account, role, amount_fen) VALUES (?, ?, ?, ?)",
                        (line for i, site, *_rest in rows for line in _lines(i, site, share)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    ap.add_argument("--database-url")
    ap.add_argument("--orders", type=int, default=1_000_000, help="the site's orders in the month")
    ap.add_argument("--noise", type=int, default=100_000, help="another site's orders in the same month")
    ap.add_argument("--previous", type=int, default=100_000, help="the site's orders in the month before")
    args = ap.parse_args()

    from hq import licences
    from hq.ledger import statements
    from hq.ledger.rates import share_fen
    from hq.service import HQ
    from hq.settings import HQSettings
    from kitcore import statement_pdf

    with ExitStack() as stack:
        url = args.database_url
        if url is None and args.db == "postgres":
            from tests.hq.pg import fresh_database, plain
            from tests.support.postgres import postgres_cluster

            url = stack.enter_context(fresh_database(plain(stack.enter_context(postgres_cluster()))))
        hq_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="settle-bench-")))
        service = HQ.open(HQSettings(dir=hq_dir / "hq", database_url=url, registry_url=None))
        stack.callback(service.close)
        for site in ("bench-site", "noise-site"):
            licences.issue(service, "bench", site, "pro", ["game"], 365)
        month = datetime.combine(MONTH, datetime.min.time(), tzinfo=timezone.utc)
        before = datetime.combine((MONTH - timedelta(days=1)).replace(day=1), datetime.min.time(), tzinfo=timezone.utc)
        loaded = load(service, [("bench-site", args.previous, before, month - before),
                                ("bench-site", args.orders, month, timedelta(days=31)),
                                ("noise-site", args.noise, month, timedelta(days=31))])
        print(f"loaded {args.previous + args.orders + args.noise:,} order entries "
              f"({6 * (args.previous + args.orders + args.noise):,} lines) in {loaded:.1f} s "
              f"[{service.engine.dialect.name}]")

        began = time.perf_counter()
        issued = statements.issue(service, "bench", "bench-site", "monthly", MONTH)
        issue_seconds = time.perf_counter() - began
        net = GROSS - COST - share_fen(GROSS, SHARE_BPS)
        assert issued["totals"]["opening"] == args.previous * net, issued["totals"]
        assert issued["totals"]["closing"] == (args.previous + args.orders) * net, issued["totals"]
        out = hq_dir / "statement.csv"
        began = time.perf_counter()
        with out.open("wb") as handle:
            statements.export(service, issued["id"], handle)
        export_seconds = time.perf_counter() - began
        began = time.perf_counter()
        pdf = statements.pdf_bytes(service, issued["id"])
        pdf_seconds = time.perf_counter() - began
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"monthly statement, {args.orders:,} orders: issue {issue_seconds:.1f} s "
              f"(figures + CSV SHA-256), export {export_seconds:.1f} s, CSV {out.stat().st_size / 1e6:.0f} MB, "
              f"PDF {pdf_seconds:.1f} s ({len(pdf) / 1e6:.1f} MB, first {statement_pdf.MAX_LINES:,} lines), "
              f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
