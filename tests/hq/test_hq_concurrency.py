"""Concurrent allocation over real HTTP: many parallel approves never share a card key."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.hq.helpers import auth, order

THREADS = 50
KEYS = 60


def _permissive(hq) -> None:
    hq.set_rules({"velocity": [], "new_site": {"days": 0}, "site_daily": {"max_orders": 10**6, "max_amount_cents": 10**12},
                  "limits": {"review_quantity": 1000, "reject_quantity": 2000}})


def test_parallel_orders_never_share_a_key(tmp_path, db_url):
    from hq.testing import running_hq

    with running_hq(tmp_path, database_url=db_url, site_rate_per_second=10_000, site_rate_burst=10_000) as hq:
        _permissive(hq)
        hq.seed_item("game-100", max_qty=5)
        stock = {(k["serial"], k["secret"]) for k in hq.seed_card_keys("game-100", KEYS)}
        tokens = [hq.issue_licence(f"site-{i}") for i in range(5)]

        client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=THREADS))

        def buy(i: int) -> dict:
            r = client.post(f"{hq.url}/v1/orders", json={"orders": [order(f"o-{i}", quantity=1 + i % 2)]},
                            headers={**auth(tokens[i % 5]), "Idempotency-Key": f"k-{i}"})
            assert r.status_code == 200, r.text
            return r.json()["results"][0]

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(buy, range(2 * THREADS)))
        delivered = [(k["serial"], k["secret"]) for r in results if r["status"] == "delivered"
                     for k in r["delivery"]["card_keys"]]
        assert len(delivered) == len(set(delivered)), "a card key was sold twice"
        assert set(delivered) <= stock
        wanted = sum(1 + i % 2 for i in range(2 * THREADS))
        assert wanted > KEYS and len(delivered) >= KEYS - 1  # at most one key left when the next order needs two
        out = [r for r in results if r["status"] == "rejected"]
        assert out and all(r["reasons"] == ["out_of_stock"] for r in out)
        for r in results:
            if r["status"] == "delivered":
                assert len(r["delivery"]["card_keys"]) in (1, 2)
        with hq.service.session() as s:
            from hq.models import CardKey

            sold = Counter(k.order_pk for k in s.query(CardKey).filter(CardKey.status == "sold"))
        assert sum(sold.values()) == len(delivered)


def test_same_key_in_parallel_processes_once(tmp_path, db_url):
    from hq.testing import running_hq

    with running_hq(tmp_path, database_url=db_url, site_rate_per_second=10_000, site_rate_burst=10_000) as hq:
        _permissive(hq)
        hq.seed_item("game-100")
        hq.seed_card_keys("game-100", 20)
        token = hq.issue_licence("xingchen")
        body = {"orders": [order(f"o-{i}") for i in range(10)]}

        client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=10))

        def send(_: int) -> httpx.Response:
            return client.post(f"{hq.url}/v1/orders", json=body, headers={**auth(token), "Idempotency-Key": "same"})

        with ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(send, range(10)))
        codes = Counter(r.status_code for r in responses)
        assert set(codes) <= {200, 409} and codes[200] >= 1
        answers = [r.json()["results"] for r in responses if r.status_code == 200]
        keys = [[k["serial"] for res in a for k in res["delivery"]["card_keys"]] for a in answers]
        assert all(k == keys[0] for k in keys) and len(set(keys[0])) == 10
        final = client.post(f"{hq.url}/v1/orders", json=body, headers={**auth(token), "Idempotency-Key": "same"})
        assert final.headers["idempotent-replayed"] == "true"
        assert [k["serial"] for res in final.json()["results"] for k in res["delivery"]["card_keys"]] == keys[0]
