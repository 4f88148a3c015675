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
from tests.hq.helpers import auth


@pytest.fixture
def clients(hq_server) -> Iterator[tuple[TestClient, TestClient, str]]:  # type: ignore[no-untyped-def]
    conf = hq_server.service.settings
    fast = create_app(conf, hq=hq_server.service)
    routed = create_app(conf, hq=hq_server.service)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not SiteFastPaths]
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
