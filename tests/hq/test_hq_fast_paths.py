"""The fast paths (hq.fast_paths) answer exactly as the FastAPI routes they stand in front of.

One HQ, two ASGI apps on it: the app as served, and the same app without its
fast-path middleware, so every request reaches FastAPI's route. Each request
below goes to both; status, error body and answer must be the same.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from hq.app import create_app
from hq.fast_paths import HANDLERS, SiteFastPaths
from tests.hq.helpers import auth, order


@pytest.fixture
def clients(hq_server) -> Iterator[tuple[TestClient, TestClient, str]]:  # type: ignore[no-untyped-def]
    conf = hq_server.service.settings
    fast = create_app(conf, hq=hq_server.service)
    routed = create_app(conf.model_copy(update={"fast_paths": False}), hq=hq_server.service)  # KIT_HQ_FAST_PATHS=false
    assert SiteFastPaths not in [m.cls for m in routed.user_middleware]
    token = hq_server.issue_licence("fast-a")
    with TestClient(fast) as a, TestClient(routed) as b:
        yield a, b, token


def untimed(body: dict[str, Any]) -> dict[str, Any]:
    """An answer without its clock reading (the two requests are made one after the other)."""
    return {k: v for k, v in body.items() if k != "server_time"}


def same(clients: tuple[TestClient, TestClient, str], method: str, path: str, **kwargs: Any) -> int:
    fast, routed, _ = clients
    one, other = fast.request(method, path, **kwargs), routed.request(method, path, **kwargs)
    assert (one.status_code, untimed(one.json())) == (other.status_code, untimed(other.json())), (path, kwargs)
    assert abs(one.json().get("server_time", 0) - other.json().get("server_time", 0)) <= 1  # a second may turn
    assert one.headers.get("content-type") == other.headers.get("content-type")
    assert one.headers.get("www-authenticate") == other.headers.get("www-authenticate")
    return one.status_code


def test_the_wait_fast_path_answers_as_the_route_does(clients) -> None:  # type: ignore[no-untyped-def]
    token = clients[2]
    statuses = [same(clients, "GET", "/v1/commands/wait", params=params, headers=headers)
                for headers in ({}, auth(token[:-4] + "AAAA"), auth(token))
                for params in ({"wait": 0}, {"wait": 56}, {"wait": -1}, {"after": -1}, {"after": "x"},
                               {"after": 2**63}, {"wait": "1.5"}, {"after": 3, "wait": 0}, [("wait", 9), ("wait", 0)])]
    assert statuses[:9] == [401, 422, 422, 422, 422, 422, 422, 401, 401]  # the query is checked before the token
    assert statuses[18:] == [200, 422, 422, 422, 422, 422, 422, 200, 200]


def test_the_heartbeat_fast_path_answers_as_the_route_does(clients) -> None:  # type: ignore[no-untyped-def]
    token = clients[2]
    good = {"version": "1", "applied_seq": 0, "health": {}, "counters": {}}
    for body, status in ((good, 200), ({**good, "applied_seq": -1}, 422), ({"version": 3}, 422)):
        assert same(clients, "POST", "/v1/heartbeat", json=body, headers=auth(token)) == status
    assert same(clients, "POST", "/v1/heartbeat", json=good) == 401


def test_every_fast_path_is_a_documented_route(hq_server) -> None:  # type: ignore[no-untyped-def]
    app = create_app(hq_server.service.settings, hq=hq_server.service)
    paths = app.openapi()["paths"]
    assert all(method.lower() in paths.get(path, {}) for method, path in HANDLERS)


ONE = order("FP{tag}1", account="{tag}-player")  # one body, so sending it again is a replay


def _orders_request(tag: str, orders: list[dict[str, Any]] | None = None, key: str | None = "{tag}-key",
                    content_type: str = "application/json", body: bytes | None = None,
                    token: str | None = None) -> dict[str, Any]:
    """One POST /v1/orders; `{tag}` in its key and order ids makes each app's request its own (no replay)."""
    import json

    headers = {"content-type": content_type, **(auth(token) if token else {})}
    if key is not None:
        headers["Idempotency-Key"] = key.format(tag=tag)
    content = body if body is not None else json.dumps({"orders": orders or [ONE]}).encode()
    return {"headers": headers, "content": content.replace(b"{tag}", tag.encode())}


def _answer(response: Any, tag: str) -> tuple[int, Any, str | None]:
    """Status, body (this request's order ids made common), replay header."""
    text = response.text.replace(f"FP{tag}", "FP*")
    return response.status_code, without_own_values(text), response.headers.get("idempotent-replayed")


def without_own_values(text: str) -> Any:
    """The answer's body without what each order gets of its own: HQ's number for it and its card keys."""
    import json

    body = json.loads(text)
    for result in body.get("results", []) if isinstance(body, dict) else []:
        result.pop("hq_order_id", None)  # HQ's own number for each order
        for key in (result.get("delivery") or {}).get("card_keys", []):  # each order gets keys of its own
            key.update(serial="*", secret="*")
    return body


def test_the_orders_fast_path_answers_as_the_route_does_and_takes_only_well_formed_requests(
        clients, hq_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hq import licences, orders_api

    fast, routed, token = clients
    hq_server.seed_item("game-100", price_cents=9900)
    hq_server.seed_card_keys("game-100", 10)
    taken: list[str] = []
    decide = orders_api._decide
    monkeypatch.setattr(orders_api, "_decide", lambda request, key, batch: taken.append(key) or decide(request, key, batch))
    # each app's buyer is its own (the risk engine counts a buyer's orders across both)
    two = [order("FP{tag}2", account="{tag}-player"), order("FP{tag}3", quantity=2, account="{tag}-player")]
    cases = [  # (request, status, served by the fast path)
        (dict(token=token), 200, True),
        (dict(token=token, orders=two, key="{tag}-two"), 200, True),
        (dict(token=token), 200, True),  # the first again: a replay
        (dict(token=token, key=None), 422, False),
        (dict(token=token, key="{tag} key"), 422, False),
        (dict(token=token, key="k" * 201), 422, False),
        (dict(token=token, key="{tag}-text", content_type="text/plain"), 422, False),
        (dict(token=token, key="{tag}-bad", body=b'{"orders": ['), 422, False),
        (dict(token=token, key="{tag}-none", body=b'{"orders": "none"}'), 422, False),
        (dict(token=token, key="{tag}-twice", orders=[order("FP{tag}4")] * 2), 422, True),
        (dict(token=token, key="{tag}-over", orders=[{**order("FP{tag}5"), "total_cents": 10000}]), 422, True),
        (dict(), 401, True),
        (dict(token=token[:-4] + "AAAA"), 401, True),
        (dict(key=None), 401, False),  # no key and no token: the route checks the caller first
    ]
    for request, status, served in cases:
        before = len(taken)
        answers = [_answer(client.post("/v1/orders", **_orders_request(tag, **request)), tag)
                   for client, tag in ((fast, "f"), (routed, "r"))]
        assert answers[0] == answers[1], request
        assert answers[0][0] == status, (request, answers[0])
        assert len(taken) - before == int(served), request
    assert _answer(fast.post("/v1/orders", **_orders_request("f", token=token)), "f")[2] == "true"
    licences.suspend(hq_server.service, "test", "fast-a", "audit")  # orders refused, the rest still answered
    suspended = [_answer(client.post("/v1/orders", **_orders_request(tag, token=token, key="{tag}-late")), tag)
                 for client, tag in ((fast, "f"), (routed, "r"))]
    assert suspended[0] == suspended[1] == (403, {"error": "licence_suspended", "detail": "licence suspended: audit"},
                                            None)
