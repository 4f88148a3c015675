"""Order requests that arrive together, from one site or several, are decided together (hq.order_groups),
and answered exactly as one request after another would be.

A group forms while a request is being decided. The tests hold the first request inside its decision,
queue the others behind it one by one (so their order is known), then let it go: the rest are decided
as one group. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import httpx
import pytest
from sqlalchemy import func, select

from hq import batch as batches
from hq import inventory, licences
from hq import order_groups, orders
from hq.errors import ApiError
from hq.models import IdempotencyKey, Order
from hq.order_checks import SiteContext
from hq.schemas import OrderBatch
from hq.service import HQ
from tests.hq.helpers import order
from tests.hq.test_hq_batch import _orders, _summary, hq  # noqa: F401 - `hq`: the fixture, both databases

CTX = SiteContext("site-a", ("game",), ("CN",))


def _batch(*items: dict[str, Any]) -> OrderBatch:
    return OrderBatch.model_validate({"orders": list(items)})


class HeldLead:
    """Sends requests on threads of their own; the first is held inside its decision until `release`."""

    def __init__(self, hq: HQ, monkeypatch: pytest.MonkeyPatch) -> None:
        self.groups = order_groups.of(hq)
        self.entered, self.go = threading.Event(), threading.Event()
        self.answers: dict[str, Any] = {}
        self.group_keys: list[list[str]] = []
        lone = orders.submit

        def held(*args: Any) -> Any:
            if not self.entered.is_set():
                self.entered.set()
                assert self.go.wait(30)
            return lone(*args)

        decide_new = batches.decide_new

        def counted(hq_: HQ, parts: list[batches.Part], *rest: Any) -> Any:
            self.group_keys.append([p.key for p in parts])
            return decide_new(hq_, parts, *rest)

        monkeypatch.setattr(orders, "submit", held)
        monkeypatch.setattr(batches, "decide_new", counted)
        self.threads: list[threading.Thread] = []

    def send(self, key: str, batch: OrderBatch, ctx: SiteContext = CTX) -> None:
        name = f"{key}#{len(self.threads)}"  # the key and the turn it was sent in

        def run() -> None:
            try:
                self.answers[name] = self.groups.submit(ctx, key, batch)
            except BaseException as exc:  # noqa: BLE001 - the answer under test
                self.answers[name] = exc

        waiting = self.groups.waiting()
        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()
        if len(self.threads) == 1:
            assert self.entered.wait(10)
        else:
            _until(lambda: self.groups.waiting() == waiting + 1)

    def release(self) -> dict[str, Any]:
        self.go.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()
        return self.answers


def _until(check: Callable[[], bool]) -> None:
    deadline = threading.Event()
    for _ in range(1000):
        if check():
            return
        deadline.wait(0.01)
    raise AssertionError("not queued")


def _buyer(order_id: str, **fields: Any) -> dict[str, Any]:
    """An order from a buyer of its own (the velocity rules count by buyer)."""
    n = sum(map(ord, order_id)) % 250
    return order(order_id, account=f"acc-{order_id}", contact=f"{order_id}@example.cn", ip=f"198.51.100.{n}", **fields)


def _moved(item: dict[str, Any], site: str, net: str) -> dict[str, Any]:
    """The order as `site`'s, from buyers of that site's own (the velocity rules count a buyer across sites)."""
    buyer = item["buyer"]
    return {**item, "order_id": f"{site}-{item['order_id']}",
            "buyer": {**buyer, "account": f"{site}-{buyer['account']}", "contact": f"{site}-{buyer['contact']}",
                      "ip": buyer["ip"].replace("198.51.100.", net)}}


def test_a_group_of_two_sites_decides_as_one_request_after_another_would(hq, monkeypatch):  # noqa: F811
    """Two sites' requests interleaved in one group: each site's day counts its own orders only (the daily
    limit is 9, each sends 12), the card keys run out across both, as one request after another."""
    items = _orders()  # velocity, site-daily, quantity, unknown-SKU and out-of-stock cases interleaved
    for site in ("site-c", "site-d", "site-e"):
        licences.issue(hq, "t", site, "pro", ["game"], 365)
    held = HeldLead(hq, monkeypatch)
    held.send("lead", _batch(_buyer("lead", sku="no-such-sku")), ctx=SiteContext("site-e", ("game",), ("CN",)))
    sent = [(site, i, _moved(item, site, net)) for i, item in enumerate(items)
            for site, net in (("site-a", "198.51.100."), ("site-b", "192.0.2."))]
    for site, i, item in sent:
        held.send(f"k{i}", _batch(item), ctx=SiteContext(site, ("game",), ("CN",)))
    answers = held.release()
    grouped = [answers[f"k{i}#{n + 1}"] for n, (_, i, _) in enumerate(sent)]
    assert held.group_keys == [["lead"], [f"k{i}" for _, i, _ in sent]]  # the first alone, the rest together
    assert all(replayed is False for _, replayed in grouped)
    # the same requests one after another, at two other sites, with as many card keys as the group found
    inventory.import_csv(hq, "t", "sku,serial,secret\n" + "".join(f"card-1,B{i:03d},secret-b{i}\n" for i in range(2)))
    twin = {"site-a": ("site-c", "203.0.113."), "site-b": ("site-d", "198.18.0.")}
    one_by_one = [orders.submit(hq, SiteContext(twin[site][0], ("game",), ("CN",)), f"k{i}",
                                _batch(_moved(items[i], *twin[site])))[0] for site, i, _ in sent]
    untagged = [[(o[0].split("-", 2)[2], *o[1:]) for o in _summary(r)] for r in one_by_one]
    assert [_summary(r) for r, _ in grouped] == [[(f"{site}-{o[0]}", *o[1:]) for o in u]
                                                 for (site, _, _), u in zip(sent, untagged)]
    assert any("site_daily" in reason for r, _ in grouped for reason in r[0]["reasons"])  # the limit was reached
    with hq.session() as s:  # each key finished with its own order, each order stored once, at its site
        keys = {(site, key): ids for site, key, ids in s.execute(
            select(IdempotencyKey.site_id, IdempotencyKey.key, IdempotencyKey.hq_order_ids)
            .where(IdempotencyKey.site_id.in_(["site-a", "site-b"]))).all()}
        assert keys == {(site, f"k{i}"): [r[0]["hq_order_id"]] for (site, i, _), (r, _) in zip(sent, grouped)}
        assert dict(s.execute(select(Order.site_id, func.count()).where(Order.site_id.in_(["site-a", "site-b"]))
                              .group_by(Order.site_id)).all()) == {"site-a": len(items), "site-b": len(items)}
    again, replayed = order_groups.of(hq).submit(SiteContext("site-b", ("game",), ("CN",)), "k3", _batch(sent[7][2]))
    assert replayed and again == [{**grouped[7][0][0], "replayed": True}]  # a replay reads the group's answer


def test_the_unusual_requests_of_a_group_are_answered_as_on_their_own(hq, monkeypatch):  # noqa: F811
    inventory.import_csv(hq, "t", "sku,serial,secret\n" + "".join(f"card-1,U{i:03d},secret-u{i}\n" for i in range(5)))
    d1, t1 = _buyer("d1", sku="card-1"), _buyer("t1", sku="card-1")
    first, _ = orders.submit(hq, CTX, "done", _batch(d1))
    held = HeldLead(hq, monkeypatch)
    held.send("lead", _batch(_buyer("n0", sku="card-1")))
    held.send("done", _batch(d1))  # a replay of a finished key
    held.send("new-1", _batch(_buyer("n1", sku="card-1", quantity=2)))
    held.send("twice", _batch(t1))
    held.send("twice", _batch(t1))  # the same key again while the first is in flight
    held.send("changed", _batch({**d1, "quantity": 2}))  # a known order with another body
    held.send("new-2", _batch(_buyer("n2", sku="no-such-sku")))
    answers = held.release()
    assert answers["done#1"] == ([{**first[0], "replayed": True}], True)
    assert isinstance(answers["twice#4"], ApiError) and answers["twice#4"].status == 409
    assert isinstance(answers["changed#5"], ApiError) and answers["changed#5"].code == "idempotency_conflict"
    decided = {k: r[0][0] for k, r in answers.items() if isinstance(r, tuple) and not r[1]}
    assert {k: (r["order_id"], r["decision"]) for k, r in decided.items()} == {
        "lead#0": ("n0", "approve"), "new-1#2": ("n1", "approve"), "twice#3": ("t1", "approve"),
        "new-2#6": ("n2", "reject")}
    # the group stepped back (one order known with another body): each was decided on its own, after
    # one attempt together that the refusal rolled back
    assert held.group_keys == [["lead"], ["new-1", "twice", "changed", "new-2"]]
    with hq.session() as s:
        states = dict(s.execute(select(IdempotencyKey.key, IdempotencyKey.state)).all())
        assert states == {"done": "done", "lead": "done", "new-1": "done", "twice": "done", "new-2": "done"}
        assert sorted(s.scalars(select(Order.order_id))) == ["d1", "n0", "n1", "n2", "t1"]


def test_a_failing_group_fails_each_request_and_keeps_none_of_their_keys(hq, monkeypatch):  # noqa: F811
    held = HeldLead(hq, monkeypatch)
    real = batches.decide_new

    def down(hq_: HQ, parts: list[batches.Part], *rest: Any) -> Any:
        if len(parts) > 1:
            raise ConnectionError("database went away")
        return real(hq_, parts, *rest)

    monkeypatch.setattr(batches, "decide_new", down)
    held.send("lead", _batch(order("x0", sku="card-1")))
    for i in (1, 2, 3):
        held.send(f"k{i}", _batch(order(f"x{i}", sku="card-1")))
    answers = held.release()
    assert answers["lead#0"][0][0]["decision"] == "approve"
    assert all(isinstance(answers[f"k{i}#{i}"], ConnectionError) for i in (1, 2, 3))
    with hq.session() as s:
        assert list(s.scalars(select(IdempotencyKey.key))) == ["lead"]  # the failed ones may be sent again
    monkeypatch.setattr(batches, "decide_new", real)
    results = [order_groups.of(hq).submit(CTX, f"k{i}", _batch(order(f"x{i}", sku="card-1")))[0][0] for i in (1, 2, 3)]
    assert [r["order_id"] for r in results] == ["x1", "x2", "x3"]


def test_groups_take_every_site_and_are_never_larger_than_a_batch(hq, monkeypatch):  # noqa: F811
    held = HeldLead(hq, monkeypatch)
    held.send("lead", _batch(_buyer("s0", sku="card-1")))
    big = [_buyer(f"m{i}", sku="no-such-sku") for i in range(210)]
    held.send("m1", _batch(*big[:150]))
    held.send("m2", _batch(*big[150:]), ctx=SiteContext("site-b", ("game",), ("CN",)))  # 60 more: 210 > one batch
    held.send("m3", _batch(_buyer("m-last", sku="no-such-sku")))
    answers = held.release()
    assert held.group_keys == [["lead"], ["m1"], ["m2", "m3"]]
    assert [len(answers[k][0]) for k in ("m1#1", "m2#2", "m3#3")] == [150, 60, 1]
    with hq.session() as s:
        assert dict(s.execute(select(Order.order_id, Order.site_id).where(Order.order_id.in_(["m160", "m-last"]))).all()) \
            == {"m160": "site-b", "m-last": "site-a"}
        assert set(s.execute(select(IdempotencyKey.site_id, IdempotencyKey.key))) == {
            ("site-a", "lead"), ("site-a", "m1"), ("site-b", "m2"), ("site-a", "m3")}


def test_one_order_a_request_at_once_over_http_each_stored_once_and_decided_in_groups(tmp_path, db_url):
    """48 buyers' single orders at once through the real server: every answer 200, every order once, every
    key sold once, and the requests were decided in fewer transactions than there were requests."""
    from concurrent.futures import ThreadPoolExecutor

    from hq.testing import running_hq
    from tests.agent.helpers import OPEN_RULES
    from tests.hq.helpers import post_orders
    from tests.monitoring.helpers import sample

    with running_hq(tmp_path, database_url=db_url, site_rate_per_second=1000, site_rate_burst=1000) as server:
        server.seed_item("card-h", price_cents=9000)
        server.seed_card_keys("card-h", 48)
        server.set_rules(OPEN_RULES)
        token = server.issue_licence("site-h", categories=["game"])
        scrape = lambda: httpx.get(f"{server.url}/metrics", headers=server.metrics_headers(), timeout=10).text  # noqa: E731
        before = scrape()
        with ThreadPoolExecutor(48) as pool:
            answers = list(pool.map(lambda i: post_orders(server, token, f"h{i}", [_buyer(f"h{i}", sku="card-h")]),
                                    range(48)))
        after = scrape()
        assert [a.status_code for a in answers] == [200] * 48, [a.text[:200] for a in answers if a.status_code != 200]
        results = [a.json()["results"][0] for a in answers]
        assert [r["order_id"] for r in results] == [f"h{i}" for i in range(48)]
        serials = [r["delivery"]["card_keys"][0]["serial"] for r in results]
        assert len(set(serials)) == 48  # each buyer their own key
        delta = {part: (sample(after, f"kithq_order_group_requests_{part}") or 0)
                 - (sample(before, f"kithq_order_group_requests_{part}") or 0) for part in ("sum", "count")}
        assert delta["sum"] == 48 and delta["count"] < 48, delta


def test_with_groups_off_each_request_is_decided_on_its_own(hq, monkeypatch):  # noqa: F811
    monkeypatch.setattr(hq.settings, "order_groups", False)
    held = HeldLead(hq, monkeypatch)
    held.send("lead", _batch(_buyer("g0", sku="card-1")))
    threads = [threading.Thread(target=lambda i=i: held.answers.__setitem__(
        f"k{i}", order_groups.of(hq).submit(CTX, f"k{i}", _batch(_buyer(f"g{i}", sku="no-such-sku"))))) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [held.answers[f"k{i}"][0][0]["order_id"] for i in (1, 2, 3)] == ["g1", "g2", "g3"]  # not behind the lead
    held.release()
    assert sorted(map(sorted, held.group_keys)) == [["k1"], ["k2"], ["k3"], ["lead"]]


def test_each_order_of_a_group_is_judged_under_its_own_sites_licence(hq, monkeypatch):  # noqa: F811
    inventory.import_csv(hq, "t", "sku,serial,secret\n" + "".join(f"card-1,L{i:03d},secret-l{i}\n" for i in range(4)))
    held = HeldLead(hq, monkeypatch)
    held.send("lead", _batch(_buyer("l0", sku="no-such-sku")))
    held.send("game", _batch(_buyer("l1", sku="card-1")))
    held.send("phones", _batch(_buyer("l2", sku="card-1")), ctx=SiteContext("site-b", ("phone",), ("CN",)))
    held.send("games", _batch(_buyer("l3", sku="card-1")), ctx=SiteContext("site-b", ("game",), ("CN",)))
    answers = held.release()
    assert held.group_keys[1] == ["game", "phones", "games"]
    judged = {k.split("#")[0]: (r[0][0]["decision"], r[0][0]["reasons"]) for k, r in answers.items()}
    assert judged["game"] == ("approve", []) and judged["games"] == ("approve", [])
    assert judged["phones"] == ("reject", ["category_not_licensed"])  # site-b's licence here: phones only


def test_an_order_id_another_site_already_used_is_new_for_this_one_in_a_group(hq, monkeypatch):  # noqa: F811
    """HQ looks up the group's known orders for all its sites in one statement: a match on the order id alone
    (the same id at another site, with another body) must not make this site's order look known."""
    inventory.import_csv(hq, "t", "sku,serial,secret\n" + "".join(f"card-1,X{i:03d},secret-x{i}\n" for i in range(3)))
    site_b = SiteContext("site-b", ("game",), ("CN",))
    first, _ = orders.submit(hq, site_b, "b-first", _batch(_buyer("shared", sku="card-1")))
    held = HeldLead(hq, monkeypatch)
    stepped_back: list[str] = []
    each = orders.decide_each
    monkeypatch.setattr(orders, "decide_each", lambda hq_, ctx, key, batch: (stepped_back.append(key),
                                                                            each(hq_, ctx, key, batch))[1])
    held.send("lead", _batch(_buyer("x0", sku="no-such-sku")))
    held.send("a-shared", _batch(_buyer("shared", sku="card-1", quantity=2)))  # site-a; same id, another body
    held.send("b-other", _batch(_buyer("other", sku="no-such-sku")), ctx=site_b)
    answers = held.release()
    assert held.group_keys[1] == ["a-shared", "b-other"] and stepped_back == []  # together, neither stepping back
    (mine,), replayed = answers["a-shared#1"]
    assert replayed is False and mine["decision"] == "approve" and len(mine["delivery"]["card_keys"]) == 2
    assert mine["hq_order_id"] != first[0]["hq_order_id"]
