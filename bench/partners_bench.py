"""Benchmark the partner programme's periodic work: a stock round and a month's ranking.

    python bench/partners_bench.py                                  # SQLite in a temporary HQ dir
    python bench/partners_bench.py --sites 1000 --orders 200000 --skus 2000 --keys 200000
    python bench/partners_bench.py --database-url postgresql://...  # an empty, throwaway database

Loads `--orders` delivered orders spread over four months and `--sites` sites (contacts drawn
from a pool, so some buyers repeat), `--skus` card-key SKUs sharing `--keys` available keys,
then times `hq.stock.evaluate` (every SKU's count and state; what each worker does every
`KIT_HQ_ALERT_CHECK_SECONDS`) and `hq.grades.ranking` for the last month (four months of metrics):
cold (every site's metrics computed, as before the cache, and kept) and warm (from `grade_cache`),
then one site's own grade warm and cold.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load(hq, sites: int, orders: int, skus: int, keys: int) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from hq import catalog, licences
    from hq.models import CardKey, Order, Site

    for n in range(sites):
        licences.issue(hq, "bench", f"site-{n:05d}", "pro", ["game"], 365)
    with hq.session() as s:
        s.query(Site).update({Site.created_at: datetime(2026, 1, 1, tzinfo=timezone.utc)})
    catalog.upsert_many(hq, "bench", [(f"sku-{n:05d}", catalog.ItemSpec(name=f"s{n}", category="game",
                                                                        face_value_cents=100, price_cents=90))
                                      for n in range(skus)])
    start, span = datetime(2026, 7, 1, tzinfo=timezone.utc), timedelta(days=122)
    now = datetime.now(timezone.utc)
    with hq.engine.begin() as conn:
        batch = []
        for n in range(orders):
            at = start + span * (n / max(orders, 1))
            batch.append({"hq_order_id": f"hq_{n}", "site_id": f"site-{n % sites:05d}", "order_id": f"o{n}",
                          "request_sha256": "0" * 64, "sku": "sku-00000", "quantity": 1, "unit_price_cents": 9900,
                          "currency": "CNY", "buyer_contact": f"buyer{(n * 7919) % (orders // 3 + 1)}@example.cn",
                          "site_created_at": at, "received_at": at, "decision": "approve",
                          "status": "delivered" if n % 10 else "rejected", "reasons": [], "decided_by": "risk-engine",
                          "decided_at": at})
            if len(batch) == 5000:
                conn.execute(insert(Order), batch)
                batch = []
        if batch:
            conn.execute(insert(Order), batch)
        rows = [{"sku": f"sku-{n % skus:05d}", "serial": f"K{n}", "secret_enc": "x", "status": "available",
                 "imported_at": now} for n in range(keys)]
        for i in range(0, len(rows), 5000):
            conn.execute(insert(CardKey), rows[i:i + 5000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    from sqlalchemy import delete

    from hq import grades, stock
    from hq.models import GradeCache
    from hq.service import HQ
    from hq.settings import HQSettings

    with tempfile.TemporaryDirectory() as directory:
        hq = HQ.open(HQSettings(dir=Path(directory), database_url=args.database_url, registry_url=None))
        t0 = time.perf_counter()
        _load(hq, args.sites, args.orders, args.skus, args.keys)
        print(f"loaded {args.sites} sites, {args.orders} orders, {args.skus} SKUs, {args.keys} keys "
              f"in {time.perf_counter() - t0:.1f} s ({hq.engine.dialect.name})")
        for label in ("first", "steady"):
            t0 = time.perf_counter()
            stock.evaluate(hq)
            print(f"stock round ({label}): {1000 * (time.perf_counter() - t0):.0f} ms")
        for label in ("cold: computed and kept", "warm: from the cache"):
            t0 = time.perf_counter()
            rows = grades.ranking(hq, "2026-10")
            print(f"ranking 2026-10 (4 months of metrics, {len(rows)} sites), {label}: "
                  f"{1000 * (time.perf_counter() - t0):.0f} ms")
        t0 = time.perf_counter()
        grades.own_grade(hq, "site-00007", "2026-10")
        print(f"one site's own grade (GET /v1/grade), warm: {1000 * (time.perf_counter() - t0):.0f} ms")
        with hq.engine.begin() as conn:
            conn.execute(delete(GradeCache))
        t0 = time.perf_counter()
        grades.own_grade(hq, "site-00007", "2026-10")
        print(f"one site's own grade, cold (that site's rows only): {1000 * (time.perf_counter() - t0):.0f} ms")
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        hq.close()


if __name__ == "__main__":
    main()
