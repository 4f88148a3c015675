"""Shared setup of the agent benchmarks: a throwaway PostgreSQL, the real HQ, a site directory."""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def bench_world(site_id: str = "bench", **hq_settings: object) -> Iterator[tuple[object, object, str]]:
    """(running HQ on PostgreSQL, site dir, site database URL) for one benchmark run."""
    from hq.testing import running_hq
    from tests.agent.helpers import OPEN_RULES, make_site_dir
    from tests.support.postgres import create_database, postgres_cluster

    with postgres_cluster() as admin_url, tempfile.TemporaryDirectory(prefix="kitagent-bench-") as tmp:
        hq_url = create_database(admin_url)
        site_url = create_database(admin_url)
        with running_hq(Path(tmp), database_url=hq_url, site_rate_per_second=100_000,
                        site_rate_burst=100_000, **hq_settings) as hq:
            hq.set_rules(OPEN_RULES)
            site = make_site_dir(Path(tmp), hq, site_url, site_id=site_id, categories=["game", "phone"])
            yield hq, site, site_url


def bulk_catalog(hq, count: int, prefix: str = "sku") -> None:  # type: ignore[no-untyped-def]
    """Put `count` SKUs into HQ's catalog in bulk (the admin API would take minutes for 100k)."""
    from sqlalchemy import insert, func, select

    from hq.models import CatalogChange, CatalogItem

    now = datetime.now(timezone.utc)
    with hq.service.session() as s:
        start = int(s.scalar(select(func.coalesce(func.max(CatalogChange.id), 0))))
        s.execute(insert(CatalogChange), [{"sku": f"{prefix}{i:06d}", "kind": "upsert", "at": now}
                                          for i in range(count)])
        end = int(s.scalar(select(func.max(CatalogChange.id))))
        assert end - start == count
        s.execute(insert(CatalogItem), [{
            "sku": f"{prefix}{i:06d}", "name": f"游戏点卡 {i}", "category": "game" if i % 2 else "phone",
            "face_value_cents": 10000, "price_cents": 9000 + i % 1000, "currency": "CNY",
            "stock_kind": "direct_topup", "account_pattern": r"^\d{5,12}$", "min_qty": 1, "max_qty": 10,
            "status": "active", "version": start + 1 + i, "deleted": False, "updated_at": now,
        } for i in range(count)])


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def cpu_seconds(proc) -> float:  # type: ignore[no-untyped-def]
    times = proc.cpu_times()
    return times.user + times.system


def postgres_cpu(engine):  # type: ignore[no-untyped-def]
    """A reader of the CPU seconds used so far by the PostgreSQL cluster behind `engine` (its processes)."""
    import psutil
    from sqlalchemy import text

    with engine.connect() as conn:
        postmaster = psutil.Process(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()).parent()

    def used() -> float:
        total = 0.0
        for proc in [postmaster, *postmaster.children()]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    return used
