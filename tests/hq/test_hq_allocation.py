"""Card-key allocation on every path an order can take, concurrently: no key is ever sold twice.

The paths: a batch of new orders (hq.batch locks keys per SKU), the per-order
path (hq.orders.decide_one, which uses hq.inventory.allocate) and an operator
approving an order under review (hq.reviews.resolve, the same allocate).

On PostgreSQL parallel orders must take different keys *without waiting for
each other*: while one transaction holds keys it has not committed yet, an
order on any path still completes at once with other keys. On SQLite
transactions run one at a time; the rule that no key is sold twice and none
is lost holds there too.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql

from hq import batch, inventory, orders, reviews
from hq.models import CardKey, CatalogItem, Order
from hq.risk import parse_rules
from hq.schemas import OrderBatch
from hq.service import HQ
from tests.hq import pg
from tests.hq.helpers import open_hq, order, rewrite_row

REVIEW_FROM = 50_000
RULES = {"limits": {"review_amount_cents": REVIEW_FROM, "reject_amount_cents": 10**10, "review_quantity": 1000,
                    "reject_quantity": 2000},
         "velocity": [], "site_daily": {"max_orders": 10**6, "max_amount_cents": 10**12}, "new_site": {"days": 0},
         "foreign_region_action": None}
CTX = orders.SiteContext("site-a", ("game",), ("CN",))
CREATED = "2025-03-01T08:00:00+00:00"
NO_WAIT = 20.0  # seconds: far longer than an allocation takes; a path that waits for another's lock exceeds it


def _open(tmp_path, db_url: str | None, stock: int) -> HQ:
    return open_hq(tmp_path / "hq", db_url, card_keys=stock, rules=parse_rules(RULES))


@pytest.fixture
def pg_hq(tmp_path, hq_pg_server, hq_pg_template) -> Iterator[Callable[[int], HQ]]:
    opened: list[HQ] = []
    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url:
        def make(stock: int) -> HQ:
            opened.append(_open(tmp_path, url, stock))
            return opened[-1]

        yield make
        for service in opened:
            service.close()


def small(order_id: str, quantity: int = 1) -> dict[str, Any]:
    return {**order(order_id, sku="card-1", quantity=quantity, unit_price_cents=100), "created_at": CREATED}


def big(order_id: str, quantity: int = 1) -> dict[str, Any]:
    return {**order(order_id, sku="card-1", quantity=quantity, unit_price_cents=REVIEW_FROM), "created_at": CREATED}


def submit(hq: HQ, key: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return orders.submit(hq, CTX, key, OrderBatch.model_validate({"orders": items}))[0]


def serials(result: dict[str, Any]) -> list[str]:
    assert result["status"] == "delivered", result
    return [k["serial"] for k in result["delivery"]["card_keys"]]


def sold_by_order(hq: HQ) -> dict[int, int]:
    with hq.session() as s:
        return dict(s.execute(select(CardKey.order_pk, func.count()).where(CardKey.status == "sold")
                              .group_by(CardKey.order_pk)).all())


# -- the three paths, each as a function a worker thread runs ----------------------------------------------

def batch_path(hq: HQ, n: int, quantity: int = 1) -> list[str]:
    return serials(submit(hq, f"batch-{n}", [small(f"b-{n}", quantity)])[0])


def per_order_path(hq: HQ, n: int, quantity: int = 1) -> list[str]:
    """A batch holding an already known order goes one order at a time."""
    results = submit(hq, f"mixed-{n}", [small("known"), small(f"p-{n}", quantity)])
    assert results[0]["replayed"] and not results[1]["replayed"]
    return serials(results[1])


def review_path(hq: HQ, hq_order_id: str) -> list[str]:
    return serials(reviews.resolve(hq, "op", hq_order_id, "approve") | {"delivery": _delivery(hq, hq_order_id)})


def _delivery(hq: HQ, hq_order_id: str) -> dict[str, Any] | None:
    with hq.session() as s:
        row = s.scalar(select(Order).where(Order.hq_order_id == hq_order_id))
        return {"card_keys": inventory.delivered_keys(hq, s, row.id)} if row.status == "delivered" else None


def in_review(hq: HQ, order_id: str, quantity: int = 1) -> str:
    result = submit(hq, f"review-{order_id}", [big(order_id, quantity)])[0]
    assert result["status"] == "review"
    return str(result["hq_order_id"])


# -- PostgreSQL: parallel allocations never wait for one another ------------------------------------------

class HeldAllocation:
    """An operator's review approval caught half-way: keys taken, transaction not yet committed."""

    def __init__(self, hq: HQ, hq_order_id: str) -> None:
        self.hq, self.hq_order_id = hq, hq_order_id
        self.taken = threading.Event()
        self.release = threading.Event()
        self.keys: list[str] = []

    def run(self) -> None:
        with self.hq.session() as s:
            row = s.scalar(select(Order).where(Order.hq_order_id == self.hq_order_id).with_for_update())
            orders.fulfil(s, row, s.get(CatalogItem, row.sku))
            assert row.status == "delivered"
            s.flush()
            self.keys = [k.serial for k in s.scalars(select(CardKey).where(CardKey.order_pk == row.id))]
            self.taken.set()
            self.release.wait(60)


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["batch", "per-order", "review"])
def test_an_order_on_any_path_takes_other_keys_while_another_transaction_holds_some(pg_hq, path):
    hq = pg_hq(6)
    submit(hq, "known", [small("known")])  # one key sold before: the per-order path replays it
    held = HeldAllocation(hq, in_review(hq, "held", quantity=2))
    other = in_review(hq, "other", quantity=2)
    work = {"batch": lambda: batch_path(hq, 1, quantity=2), "per-order": lambda: per_order_path(hq, 1, quantity=2),
            "review": lambda: review_path(hq, other)}[path]
    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(held.run)
        assert held.taken.wait(NO_WAIT), "the held allocation did not start"
        try:
            mine = pool.submit(work).result(timeout=NO_WAIT)  # never waits for the held transaction's keys
        finally:
            held.release.set()
        holder.result(timeout=NO_WAIT)
    assert len(mine) == 2 and len(held.keys) == 2
    assert not set(mine) & set(held.keys), "a key was sold twice"
    assert sorted(sold_by_order(hq).values()) == [1, 2, 2]


def _all_paths_at_once(hq: HQ, rounds: int) -> list[list[str]]:
    """`rounds` orders on each path, all started together; every one must be delivered."""
    submit(hq, "known", [small("known")])
    waiting = [in_review(hq, f"r-{i}") for i in range(rounds)]
    jobs: list[Callable[[], list[str]]] = []
    for i in range(rounds):
        jobs += [lambda i=i: batch_path(hq, i), lambda i=i: per_order_path(hq, i),
                 lambda i=i: review_path(hq, waiting[i])]
    start = threading.Barrier(len(jobs))

    def run(job: Callable[[], list[str]]) -> list[str]:
        start.wait(NO_WAIT)
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs, timeout=120))


@pytest.mark.postgres
def test_every_path_at_once_on_postgres_sells_each_key_once_and_runs_out_exactly(pg_hq):
    rounds = 4
    hq = pg_hq(1 + 3 * rounds)  # exactly enough: the known order's key and one per order
    delivered = [k for keys in _all_paths_at_once(hq, rounds) for k in keys]
    assert len(delivered) == len(set(delivered)) == 3 * rounds
    assert sum(sold_by_order(hq).values()) == 1 + 3 * rounds
    with hq.session() as s:
        assert s.scalar(select(func.count()).select_from(CardKey).where(CardKey.status == "available")) == 0


def test_every_path_at_once_on_sqlite_sells_each_key_once(tmp_path):
    """The same rule where transactions take turns (BEGIN IMMEDIATE)."""
    rounds = 3
    hq = _open(tmp_path, None, 1 + 3 * rounds)
    try:
        delivered = [k for keys in _all_paths_at_once(hq, rounds) for k in keys]
        assert len(delivered) == len(set(delivered)) == 3 * rounds
        assert sum(sold_by_order(hq).values()) == 1 + 3 * rounds
    finally:
        hq.close()


# -- without a server: the statements that take keys lock them and skip locked ones ----------------------

class _Recorder:
    """Stands in for a Session: records the statement allocate() runs, returns no keys."""

    def __init__(self) -> None:
        self.statements: list[Any] = []

    def scalars(self, statement: Any) -> list[int]:
        self.statements.append(statement)
        return []


def _pg_sql(statement: Any) -> str:
    return " ".join(str(statement.compile(dialect=postgresql.dialect())).split())


def test_allocate_locks_the_keys_it_takes_and_skips_locked_ones():
    session = _Recorder()
    assert inventory.allocate(session, "card-1", 3, order_pk=1) is False  # type: ignore[arg-type]
    sql = _pg_sql(session.statements[0])
    assert sql.endswith("FOR UPDATE SKIP LOCKED"), sql
    assert "card_keys.status = %(status_1)s" in sql and "LIMIT %(param_1)s" in sql


@pytest.mark.parametrize("on_postgres", [False, True])
def test_the_batch_key_lock_skips_locked_keys(on_postgres):
    sql = _pg_sql(batch._sql(on_postgres).keys)
    assert sql.endswith("FOR UPDATE SKIP LOCKED"), sql
    assert "card_keys.status = %(status_1)s" in sql and "LIMIT %(n)s" in sql


def test_keys_go_out_oldest_first_and_are_delivered_in_that_order(tmp_path):
    hq = _open(tmp_path, None, 4)  # imported as S0000..S0003
    try:
        assert serials(submit(hq, "k1", [small("o1", 2)])[0]) == ["S0000", "S0001"]
        assert serials(submit(hq, "known", [small("known")])[0]) == ["S0002"]
        assert per_order_path(hq, 1, quantity=1) == ["S0003"]  # one at a time: the same order
        assert [k["serial"] for k in orders.get_order(hq, "site-a", "o1")["delivery"]["card_keys"]] == ["S0000", "S0001"]
    finally:
        hq.close()


@pytest.mark.postgres
def test_a_large_import_refreshes_the_planners_statistics(pg_hq):
    from sqlalchemy import text

    hq = pg_hq(0)

    def analyzed() -> int:
        with hq.engine.connect() as conn:
            return int(conn.execute(text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'card_keys'"))
                       .scalar() or 0)

    before = analyzed()
    inventory.import_csv(hq, "t", "sku,serial,secret\n" + "".join(f"card-1,A{i},x\n" for i in range(999)))
    assert analyzed() == before  # below the threshold: autovacuum's business
    inventory.import_csv(hq, "t", "sku,serial,secret\n" + "".join(f"card-1,B{i},x\n" for i in range(1000)))
    assert analyzed() == before + 1


@pytest.mark.postgres
def test_the_same_order_decided_by_two_requests_at_once_is_delivered_once(pg_hq, monkeypatch):
    """Both requests look the order up, find nothing and decide it; the second insert meets the first's row.

    The second then answers with the first's decision and keys, marked replayed, and takes no key itself.
    Another site's "o-1" (another body) and this site's older order stand beside it and are not it.
    """
    from hq import licences, risk

    hq = pg_hq(4)
    licences.issue(hq, "t", "site-b", "pro", ["game"], 365)
    orders.submit(hq, orders.SiteContext("site-b", ("game",), ("CN",)), "b1",
                  OrderBatch.model_validate({"orders": [small("o-1", quantity=2)]}))
    submit(hq, "k0", [small("o-0")])
    both_decided = threading.Barrier(2, timeout=NO_WAIT)
    evaluate = risk.evaluate

    def decide_together(*args: Any) -> Any:
        verdict = evaluate(*args)
        both_decided.wait()  # neither inserts before both have looked the order up
        return verdict

    monkeypatch.setattr(risk, "evaluate", decide_together)
    one = OrderBatch.model_validate({"orders": [small("o-1")]}).orders[0]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: orders.decide_one(hq, CTX, one), range(2)))
    assert sorted(a["replayed"] for a in answers) == [False, True]
    first, second = sorted(answers, key=lambda a: a["replayed"])
    assert (second["hq_order_id"], second["decision"], second["status"]) == (first["hq_order_id"], "approve",
                                                                              "delivered")
    assert second["delivery"] == first["delivery"] and len(serials(first)) == 1
    assert sorted(sold_by_order(hq).values()) == [1, 1, 2]  # site-b's o-1, o-0 and this o-1: no key twice


SOLD_AT = datetime(2025, 7, 1, 9, 30, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("path", ["batch", "per-order", "review"])
def test_each_path_sells_the_ordered_skus_oldest_keys_stamped_with_hqs_clock(tmp_path, db_url, monkeypatch, path):
    """card-1's keys are older (lower ids) than card-2's; an order for card-2 takes card-2's, the oldest first.

    card-2's oldest key is written again (deleted and inserted with its id), so it no longer comes first
    in the table's physical order: only ordering by id finds it first. On PostgreSQL the planner is kept off
    the indexes (whose order would hide a missing ORDER BY): the order must not depend on the plan.
    """
    from sqlalchemy import create_engine, make_url, text

    from hq import catalog

    if db_url:
        admin = create_engine(db_url)
        with admin.begin() as conn:
            for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
                conn.execute(text(f'ALTER DATABASE "{make_url(db_url).database}" SET {setting} = off'))
        admin.dispose()
    hq = _open(tmp_path, db_url, 3)
    try:
        catalog.upsert(hq, "t", "card-2", catalog.ItemSpec(name="c2", category="game", face_value_cents=100,
                                                           price_cents=90, max_qty=10))
        inventory.import_csv(hq, "t", "sku,serial,secret\n" + "".join(f"card-2,T{i},y{i}\n" for i in range(4)))
        with hq.session() as s:
            rewrite_row(s, CardKey, CardKey.serial == "T0")
        for module in (inventory, batch):
            monkeypatch.setattr(module, "utcnow", lambda: SOLD_AT)
        if path == "per-order":
            submit(hq, "known", [small("known")])  # takes card-1's S0000
        two = {**small("o-2", quantity=2), "sku": "card-2"}
        if path == "review":
            two["unit_price_cents"] = REVIEW_FROM
            held = submit(hq, "k1", [two])[0]
            assert held["status"] == "review"
            result = reviews.resolve(hq, "op", held["hq_order_id"], "approve")
            assert result["status"] == "delivered"
        else:
            result = submit(hq, "k1", [small("known"), two] if path == "per-order" else [two])[-1]
            assert serials(result) == ["T0", "T1"]
        got = orders.get_order(hq, "site-a", "o-2")["delivery"]["card_keys"]
        assert got == [{"serial": "T0", "secret": "y0"}, {"serial": "T1", "secret": "y1"}]
        with hq.session() as s:
            sold = {k.serial: k.sold_at.replace(tzinfo=timezone.utc) for k in s.scalars(
                select(CardKey).where(CardKey.sku == "card-2", CardKey.status == "sold"))}
            left = sorted(s.scalars(select(CardKey.serial).where(CardKey.status == "available")))
        assert sold == {"T0": SOLD_AT, "T1": SOLD_AT}
        assert left == (["S0001", "S0002"] if path == "per-order" else ["S0000", "S0001", "S0002"]) + ["T2", "T3"]
    finally:
        hq.close()
